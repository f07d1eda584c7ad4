"""Memory: the peak of one block of work (e.g. decoding a test set), not of the
process, and whether a planned allocation can fit at all.

`ru_maxrss` is a lifetime maximum, so when Hydra's basic launcher runs every job of
a sweep in one process it only ever grows; `PeakMemory` measures one block instead.
"""

from __future__ import annotations

import ctypes
import gc
import os
import threading
from types import TracebackType

import torch

MIB = 2**20
STATM = "/proc/self/statm"


def resident_bytes() -> int | None:
    """Resident set size of this process now, from /proc/self/statm (None off Linux)."""
    try:
        with open(STATM, encoding="ascii") as f:
            pages = int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")


# oneDNN keeps one compiled kernel per matrix shape it has run, up to 1,024 in each
# of two caches (oneDNN's and PyTorch's ideep layer). A beam search runs its few
# matrices at a new row count nearly every step (sentences finish), so decoding
# a test set fills both with kernels it rarely reuses: ~100 MiB of the peak RSS.
KERNEL_CACHE = {"ONEDNN_PRIMITIVE_CACHE_CAPACITY": "16", "LRU_CACHE_CAPACITY": "16"}


def bound_kernel_caches() -> None:
    """Cap oneDNN's kernel caches at a few entries for a decoding process (the
    search speed does not change measurably: docs/benchmarks.md). Both are read when
    oneDNN first runs, so this must come before; a value the user set is kept."""
    for name, value in KERNEL_CACHE.items():
        os.environ.setdefault(name, value)


def available_bytes() -> int | None:
    """Memory the system can give without swapping (MemAvailable in /proc/meminfo),
    or None where that is unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def check_fits(need: int, what: str, advice: str) -> None:
    """Raise ValueError, before any work, when `what` needs more than the `need`
    bytes the system has available (no check where that is unknown)."""
    have = available_bytes()
    if have is not None and need > have:
        raise ValueError(
            f"{what} needs about {need / 2**30:.1f} GiB but only "
            f"{have / 2**30:.1f} GiB are available: {advice}"
        )


def release_free_memory() -> None:
    """Collect garbage and hand freed heap back to the OS (glibc malloc_trim), so the
    baseline is not inflated by memory an earlier job freed."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


class PeakMemory:
    """Context manager: peak memory growth (MiB) while the block runs.

    CUDA: `torch.cuda.max_memory_allocated` above the allocation at entry (tensors
    only; the CUDA context and the allocator's cache are not counted).
    CPU: peak RSS above the RSS at entry, sampled every `interval_s` by a background
    thread; short spikes between samples can be missed.

    Attributes (after exit): `peak_mb` (None when unmeasurable) and `note`, a
    sentence saying what was measured.
    """

    def __init__(
        self, device: torch.device | str = "cpu", *, interval_s: float = 0.005
    ) -> None:
        self.device = torch.device(device)
        self.interval_s = interval_s
        self.peak_mb: float | None = None
        self.note = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> PeakMemory:
        release_free_memory()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
            return self
        self._base = resident_bytes()
        self._peak = self._base
        if self._base is not None:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._peak = max(self._peak, resident_bytes() or 0)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device) - self._base
            self.peak_mb = round(peak / MIB, 1)
            self.note = "CUDA max_memory_allocated above the start (tensors only)"
            return
        if self._thread is None:
            self.note = f"unavailable: {STATM} not readable"
            return
        self._stop.set()
        self._thread.join()
        self._peak = max(self._peak, resident_bytes() or 0)
        self.peak_mb = round((self._peak - self._base) / MIB, 1)
        self.note = (
            f"CPU peak RSS growth above the start, sampled every "
            f"{self.interval_s * 1000:g} ms"
        )
