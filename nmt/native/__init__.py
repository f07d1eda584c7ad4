"""Native CPU kernels for decoding, built on demand.

- `topk.c`: the search's fused log-softmax + top-k (`top_log_probs`);
- `attention.c`: additive attention's scores, softmax and values mix in one pass,
  plus each row's entry of a per-token table when given (`additive_mix`).

On first use the C files are compiled with the machine's C compiler (`$CC`, else cc,
gcc or clang) into the user's cache (`$NMT_CACHE_DIR`, else `$XDG_CACHE_HOME/nmt` or
`~/.cache/nmt`), once per set of sources, compiler and platform, into one library
loaded with ctypes; ctypes releases the GIL while a kernel runs, so decoding
workers overlap. Without a compiler, on other devices or with `NMT_NATIVE=0`, the
functions return None and callers use PyTorch.
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

HERE = Path(__file__).parent
SOURCES = [HERE / "topk.c", HERE / "attention.c"]
HEADERS = [HERE / "common.h"]
FLAGS = ["-O3", "-fPIC", "-shared", "-fno-math-errno", "-fno-trapping-math"]
# without -fopenmp-simd top-k's block-maximum loop stays scalar (a max reduction
# may not be reordered); the sums vectorise either way (explicit lanes)
SIMD = ["-fopenmp-simd"]
# top-k's buffers live on the stack (~60 KB at these bounds; musl's threads get
# 128 KB): k <= 64 covers beams up to 31 wide
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
    """Compile SOURCES to `out` (atomically); None on success, else the reason."""
    attempts = [FLAGS + SIMD, FLAGS + SIMD + ["-DNMT_NO_CLONES"], FLAGS]
    errors = ""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        return f"cache directory: {error}"
    for flags in attempts:
        fd, tmp = tempfile.mkstemp(dir=out.parent, suffix=".so.tmp")
        os.close(fd)
        cmd = [cc, *flags, *map(str, SOURCES), "-o", tmp, "-lm"]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
            if done.returncode == 0:
                os.chmod(tmp, 0o755)  # mkstemp's 0600: others sharing the cache
                os.replace(tmp, out)
                return None
            lines = done.stderr.strip().splitlines()
            first = next((line for line in lines if "error" in line), None)
            errors = first or (lines[-1] if lines else f"exit {done.returncode}")
        except (OSError, subprocess.SubprocessError) as error:
            errors = str(error)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return f"{cc} failed: {errors}"


@functools.cache
def library() -> ctypes.CDLL | None:
    """The compiled kernels, built on first use; None (logged once) if they cannot be."""
    if os.environ.get("NMT_NATIVE", "1") == "0":
        return None
    cc = _compiler()
    if cc is None:
        log.info("no C compiler found: decoding runs in PyTorch only")
        return None
    try:
        key = hashlib.sha256(
            b"\0".join(
                [f.read_bytes() for f in SOURCES + HEADERS]
                + [cc.encode(), " ".join(FLAGS + SIMD).encode()]
                + [s.encode() for s in (sys.platform, platform.machine())]
            )
        ).hexdigest()[:16]
        path = _cache_dir() / f"kernels-{key}.so"
    except (OSError, RuntimeError) as error:  # a source missing, no home directory
        log.info("native kernels unavailable (%s): decoding runs in PyTorch", error)
        return None
    for rebuild in (not path.exists(), True):  # a cached file that fails to load
        if rebuild:  # is rebuilt once
            reason = _build(cc, path)
            if reason is not None:
                log.info(
                    "native kernels not built (%s): decoding runs in PyTorch", reason
                )
                return None
        try:
            lib = ctypes.CDLL(str(path))
            break
        except OSError as error:
            load_error = error
    else:
        log.info(
            "native kernels unavailable (%s): decoding runs in PyTorch", load_error
        )
        return None
    i64, ptr, flag = ctypes.c_int64, ctypes.c_void_p, ctypes.c_int
    signatures = {
        "nmt_top_log_probs": [ptr, i64, i64, i64, flag, flag, ptr, ptr],
        "nmt_additive_mix": [ptr, i64, flag, ptr, ptr, ptr, ptr, flag, ptr, ptr]
        + [i64] * 6
        + [ptr] * 3,
    }
    for name, argtypes in signatures.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = i64, argtypes
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


def additive_mix(
    q: Tensor,
    exp_keys: Tensor,
    v: Tensor,
    mask: Tensor,
    values: Tensor,
    offsets: Tensor | None = None,
    index: Tensor | None = None,
) -> tuple[Tensor, Tensor] | None:
    """Additive attention's weights and their mix of values in one native pass, or None.

    score[n, w, s] = sum_a 1 / (c_a + exp(-q[n, w, a]) c_a e[n, s, a]) with
    c = 1 / 2v, weights the softmax of the scores over the unmasked s, mixed =
    weights @ values (see `AdditiveAttention.prepared_weights`), plus
    offsets[index] when given. None when the kernel cannot take the input (not
    on a CPU, gradients on, some |q| > 80, an index out of range, a score that is
    not finite, no compiled kernel): the caller then uses PyTorch. Agrees with
    PyTorch's float32 result to ~1e-6; the offsets are added as PyTorch adds.

    Args:
        q: (N, W, A) float32 or bfloat16, 2 W_q query.
        exp_keys: (N, S, A) float32, exp(-2 W_k key).
        v: (A,) float32, the attention's output weights.
        mask: (N, S) bool, True at real source positions.
        values: (N, S, G) float32 or bfloat16.
        offsets: optional (K, G) float32 rows, one added to each row's mix.
        index: (N*W,) int64 row of offsets for each query row (with offsets).

    Returns:
        weights (N, W, S) and mixed (N, W, G), float32.
    """
    if (offsets is None) != (index is None):
        raise ValueError("additive_mix takes offsets and index together")
    tensors = (q, exp_keys, v, mask, values) + (
        () if offsets is None else (offsets, index)
    )
    if (
        any(t.device.type != "cpu" for t in tensors)
        or q.dtype not in (torch.float32, torch.bfloat16)
        or values.dtype not in (torch.float32, torch.bfloat16)
        or (exp_keys.dtype, v.dtype, mask.dtype)
        != (torch.float32, torch.float32, torch.bool)
        or q.dim() != 3
        or exp_keys.dim() != 3
        or values.dim() != 3
        or (torch.is_grad_enabled() and any(t.requires_grad for t in tensors))
    ):
        return None
    n, width, size = q.shape
    src, gates = exp_keys.size(1), values.size(2)
    if (
        exp_keys.shape != (n, src, size)
        or v.shape != (size,)
        or mask.shape != (n, src)
        or values.shape[:2] != (n, src)
    ):
        return None
    if offsets is not None and (
        offsets.dtype != torch.float32
        or offsets.dim() != 2
        or offsets.size(1) != gates
        or index.dtype != torch.long
        or index.shape != (n * width,)
    ):
        return None
    lib = library()
    if lib is None:
        return None
    rows = q.reshape(n * width, size)  # a view where the strides allow
    if size > 1 and rows.stride(1) != 1:
        rows = rows.contiguous()
    exp_keys, v, mask, values = (t.contiguous() for t in (exp_keys, v, mask, values))
    if offsets is not None:
        offsets, index = offsets.contiguous(), index.contiguous()
    scratch = torch.empty(2 * size, dtype=torch.float32)
    weights = torch.empty((n, width, src), dtype=torch.float32)
    mixed = torch.empty((n, width, gates), dtype=torch.float32)
    if n * width == 0:
        return weights, mixed
    bad = lib.nmt_additive_mix(
        rows.data_ptr(),
        rows.stride(0),
        int(q.dtype == torch.bfloat16),
        exp_keys.data_ptr(),
        v.data_ptr(),
        mask.data_ptr(),
        values.data_ptr(),
        int(values.dtype == torch.bfloat16),
        None if offsets is None else offsets.data_ptr(),
        None if index is None else index.data_ptr(),
        0 if offsets is None else offsets.size(0),
        n,
        width,
        src,
        size,
        gates,
        scratch.data_ptr(),
        weights.data_ptr(),
        mixed.data_ptr(),
    )
    return None if bad else (weights, mixed)
