"""Device, threads, precision and seeding: the run-time environment of a job, and
the serving CLIs' flags for it."""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import random
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any, TypeVar

import torch

Item = TypeVar("Item")
Result = TypeVar("Result")


def available_cores() -> int:
    """Cores this process may run on (respects taskset/cgroup affinity)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def set_threads(threads: int) -> int:
    """Set torch intra-op threads; returns the count.

    0 means OMP_NUM_THREADS when set (torchrun and joblib workers set it to share
    the cores), else all cores available to the process.
    """
    if threads < 0:
        raise ValueError(f"threads must be >= 0 (0 = all cores), got {threads}")
    omp = os.environ.get("OMP_NUM_THREADS", "")
    default = int(omp) if omp.isdigit() and int(omp) > 0 else available_cores()
    count = threads if threads > 0 else default
    torch.set_num_threads(count)
    return count


def pick_device(name: str = "auto") -> torch.device:
    """ "auto" -> cuda when available else cpu; "cuda" without CUDA is a ValueError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda requested but CUDA is not available")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ValueError(
            f"unknown device {name!r}: use auto, cpu, cuda or cuda:N"
        ) from None


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """--help shows each option's default, unless it has none (None, a flag off)
    or its help already names it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.default in (None, False) or "default" in text:
            return text
        return super()._get_help_string(action)


class Once(argparse.Action):
    """An option that may be given once: a repeat is a one-line error (argparse
    would silently keep the last)."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        if getattr(namespace, self.dest, None) not in (None, self.default):
            parser.exit(
                2,
                f"{parser.prog}: error: {option_string} given twice; one checkpoint "
                "at a time (ensembles are for translation models: nmt.translate, "
                "nmt.evaluate, nmt.repl)\n",
            )
        setattr(namespace, self.dest, values)


def checkpoint_parser(
    prog: str, doc: str, ckpt: str, *, ensemble: bool = False
) -> argparse.ArgumentParser:
    """The parser of an inference CLI: `prog`, the first line of `doc`, defaults in
    --help, and a required --ckpt (`ckpt`: its help) that may be given once, or
    with `ensemble` repeated (a list of paths: the models decode as one)."""
    parser = argparse.ArgumentParser(
        prog=prog, description=doc.splitlines()[0], formatter_class=HelpFormatter
    )
    if ensemble:
        parser.add_argument(
            "--ckpt",
            required=True,
            action="append",
            help=f"{ckpt}; repeat it to decode with an ensemble of translation "
            "models (their log-probs averaged; one vocabulary)",
        )
    else:
        parser.add_argument("--ckpt", required=True, action=Once, help=ckpt)
    return parser


def add_runtime_flags(parser: argparse.ArgumentParser, *, precisions: str) -> None:
    """--device, --precision (`precisions`: the help listing the choices of this
    CLI's models) and --threads, the same in translate, generate and repl."""
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--precision", default="auto", help=precisions)
    parser.add_argument(
        "--threads", type=int, default=0, help="torch threads (0 = all cores)"
    )


def runtime_from_flags(args: argparse.Namespace) -> dict[str, Any]:
    """Apply --threads; returns the `device` and `precision` for `load_*`."""
    set_threads(args.threads)
    return {"device": pick_device(args.device), "precision": args.precision}


def bf16_supported(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def int8_available(device: torch.device) -> bool:
    """Whether `nmt.fast.int8.Int8Linear` runs on `device` (CPU with a quantized
    engine and PyTorch's dynamic int8 linear ops)."""
    if device.type != "cpu":
        return False
    try:
        ops = torch.ops.quantized
        present = bool(ops.linear_dynamic) and bool(ops.linear_prepack)
    except (AttributeError, RuntimeError):
        return False
    engines = torch.backends.quantized.supported_engines
    return present and any(e != "none" for e in engines)


def resolve_precision(
    precision: str, device: torch.device, *, int8: bool = False
) -> str:
    """ "auto" -> "bf16" where the hardware has native bf16 (AVX512-BF16/AMX, Ampere+).

    "int8" (translation decoding on a CPU, when `int8` says the caller offers it):
    int8 copies of the search step's per-row linear maps (`nmt.fast`), the
    rest as "auto" would run it.
    """
    if precision == "auto":
        return "bf16" if bf16_supported(device) else "fp32"
    if precision == "int8" and int8:
        if not int8_available(device):
            raise ValueError(
                f"precision int8 needs a CPU with a quantized engine, not {device}"
            )
        return precision
    choices = "auto, fp32, bf16" + (" or int8" if int8 else " (int8: translation only)")
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision must be {choices}, not '{precision}'")
    return precision


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The dtype `autocast` runs matrix products in: bf16 for "bf16" (and "int8"
    where bf16 is native), else None (no autocast)."""
    if precision == "bf16" or (precision == "int8" and bf16_supported(device)):
        return torch.bfloat16
    return None


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast context where `autocast_dtype` says so, else a no-op."""
    dtype = autocast_dtype(device, precision)
    if dtype is not None:
        return torch.autocast(device.type, dtype=dtype)
    return contextlib.nullcontext()


def set_seed(seed: int) -> None:
    """Seed python and torch (all devices)."""
    random.seed(seed)
    torch.manual_seed(seed)


def auto_workers(workers: int, device: torch.device, jobs: int) -> int:
    """Decoding workers to use: `workers` when > 0, else (auto) 2 on a CPU with at
    least 2 torch threads, else 1; never more than `jobs` (batches to decode).

    On 2 cores, two one-thread workers decode more sentences/s than one two-thread
    worker (docs/benchmarks.md): each runs its own batch, so one core computes while
    the other worker runs Python, and no small operation waits for a second thread.
    """
    if workers <= 0:
        cpu = device.type == "cpu" and torch.get_num_threads() >= 2
        workers = 2 if cpu and _openmp() else 1
    return max(1, min(workers, jobs))


@functools.cache
def _openmp() -> bool:
    """Whether torch's intra-op threads are OpenMP's, which `in_workers` can share
    out while it runs (the native pool ignores later `set_num_threads` calls)."""
    return "parallel backend: OpenMP" in torch.__config__.parallel_info()


def in_workers(
    fn: Callable[[Item], Result],
    items: Sequence[Item],
    workers: int,
    context: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
) -> list[Result]:
    """[fn(item) for item in items], computed by `workers` threads.

    The torch intra-op threads are shared out (each worker gets threads // workers
    while they run; restored after). Each worker takes the next item when done
    with one, and runs all of its items inside one `context()` (autocast and grad
    mode are per thread). An error in any worker, or Ctrl-C, stops the others
    after their current item and is raised here. Results keep the items' order.
    """
    if workers <= 1 or len(items) <= 1:
        with context():
            return [fn(item) for item in items]
    results: list = [None] * len(items)
    order = iter(range(len(items)))
    lock, stop = threading.Lock(), threading.Event()

    def work() -> None:
        with context():
            while not stop.is_set():
                with lock:
                    i = next(order, None)
                if i is None:
                    return
                results[i] = fn(items[i])

    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, threads // workers))
    try:
        with ThreadPoolExecutor(workers, thread_name_prefix="nmt-worker") as pool:
            futures = [pool.submit(work) for _ in range(workers)]
            try:
                for future in as_completed(futures):
                    future.result()  # the first error, as soon as it happens
            except BaseException:
                stop.set()
                raise
    finally:
        torch.set_num_threads(threads)
    return results
