"""The search's one native kernel (`topk.c`: fused log-softmax + top-k), built on demand.

On first use the C file is compiled with the machine's C compiler (`$CC`, else cc,
gcc or clang) into the user's cache (`$NMT_CACHE_DIR`, else `$XDG_CACHE_HOME/nmt` or
`~/.cache/nmt`), once per source, compiler and platform, and loaded with ctypes;
ctypes releases the GIL while it runs, so decoding workers overlap. Without a
compiler, on other devices or with `NMT_NATIVE=0`, `top_log_probs` returns None
and callers use PyTorch.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from torch import Tensor

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("topk.c")
FLAGS = ["-O3", "-fPIC", "-shared", "-fno-math-errno", "-fno-trapping-math"]
# without -fopenmp-simd the block-maximum loop stays scalar (a max reduction may
# not be reordered); the exp sum vectorises either way (16 explicit lanes)
SIMD = ["-fopenmp-simd"]
# the kernel's buffers live on the stack (~60 KB at these bounds; musl's threads
# get 128 KB): k <= 64 covers beams up to 31 wide
MAX_K = 64
MAX_VOCAB = 1 << 18


def _compiler() -> str | None:
    names = [os.environ["CC"]] if os.environ.get("CC") else ["cc", "gcc", "clang"]
    return next((found for name in names if (found := shutil.which(name))), None)


def _cache_dir() -> Path:
    if os.environ.get("NMT_CACHE_DIR"):
        return Path(os.environ["NMT_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "nmt"


def _build(cc: str, out: Path) -> str | None:
    """Compile SOURCE to `out` (atomically); None on success, else the reason."""
    attempts = [FLAGS + SIMD, FLAGS + SIMD + ["-DNMT_NO_CLONES"], FLAGS]
    errors = ""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        return f"cache directory: {error}"
    for flags in attempts:
        fd, tmp = tempfile.mkstemp(dir=out.parent, suffix=".so.tmp")
        os.close(fd)
        cmd = [cc, *flags, str(SOURCE), "-o", tmp, "-lm"]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
            if done.returncode == 0:
                os.chmod(tmp, 0o755)  # mkstemp's 0600: others sharing the cache
                os.replace(tmp, out)
                return None
            lines = done.stderr.strip().splitlines()
            errors = lines[-1] if lines else f"exit status {done.returncode}"
        except (OSError, subprocess.SubprocessError) as error:
            errors = str(error)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return f"{cc} failed: {errors}"


@functools.cache
def library() -> ctypes.CDLL | None:
    """The compiled kernel, building it on first use; None (logged once) if it cannot be."""
    if os.environ.get("NMT_NATIVE", "1") == "0":
        return None
    cc = _compiler()
    if cc is None:
        log.info("no C compiler found: top-k runs in PyTorch")
        return None
    try:
        key = hashlib.sha256(
            b"\0".join(
                [SOURCE.read_bytes(), cc.encode(), " ".join(FLAGS + SIMD).encode()]
                + [s.encode() for s in (sys.platform, platform.machine())]
            )
        ).hexdigest()[:16]
        path = _cache_dir() / f"topk-{key}.so"
    except (OSError, RuntimeError) as error:  # no topk.c, no home directory
        log.info("native top-k unavailable (%s): top-k runs in PyTorch", error)
        return None
    for rebuild in (not path.exists(), True):  # a cached file that fails to load
        if rebuild:  # is rebuilt once
            reason = _build(cc, path)
            if reason is not None:
                log.info("native top-k not built (%s): top-k runs in PyTorch", reason)
                return None
        try:
            lib = ctypes.CDLL(str(path))
            break
        except OSError as error:
            load_error = error
    else:
        log.info("native top-k unavailable (%s): top-k runs in PyTorch", load_error)
        return None
    fn = lib.nmt_top_log_probs
    fn.restype = ctypes.c_int64
    fn.argtypes = [
        ctypes.c_void_p,
        ctypes.c_int64,
        ctypes.c_int64,
        ctypes.c_int64,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_void_p,
        ctypes.c_void_p,
    ]
    return lib


def top_log_probs(scores: Tensor, k: int) -> tuple[Tensor, Tensor] | None:
    """`F.log_softmax(scores.float(), 1).topk(k, 1)` in one native pass, or None.

    None when the kernel cannot take the input: not a CPU float32/bfloat16 matrix
    with unit column stride, k out of range, gradients on, non-finite rows, or no
    compiled kernel. Values agree with PyTorch's to ~1e-6; ties are ordered by column.

    Args:
        scores: (R, V) logits or log-probs.
        k: entries per row, 1 <= k <= V.

    Returns:
        values (R, k) float32 log-probs, best first, and their columns (R, k) int64.
    """
    if (
        scores.device.type != "cpu"
        or scores.dtype not in (torch.float32, torch.bfloat16)
        or scores.dim() != 2
        or scores.stride(1) != 1
        or not 1 <= k <= min(scores.size(1), MAX_K)
        or scores.size(1) > MAX_VOCAB
        or (scores.requires_grad and torch.is_grad_enabled())
    ):
        return None
    lib = library()
    if lib is None:
        return None
    rows, vocab = scores.shape
    values = torch.empty((rows, k), dtype=torch.float32)
    columns = torch.empty((rows, k), dtype=torch.long)
    if rows == 0:
        return values, columns
    bad = lib.nmt_top_log_probs(
        scores.data_ptr(),
        rows,
        vocab,
        scores.stride(0),
        k,
        int(scores.dtype == torch.bfloat16),
        values.data_ptr(),
        columns.data_ptr(),
    )
    return None if bad else (values, columns)
