"""A run dir belongs to one training at a time, and a fresh run never mixes into an
old one.

`claim_run_dir` takes an exclusive lock on `<run dir>/.nmt.lock` for the life of
the training. The lock is the operating system's (`flock`): it goes away with the
process that holds it, so a killed run never leaves the dir locked. Where `flock`
does not exist (Windows) runs are not locked.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("nmt.training.loop")

LOCK_NAME = ".nmt.lock"
# what a training writes into its run dir; any of them means the dir holds a run
RUN_FILES = ("checkpoints/last.pt", "checkpoints/best.pt", "metrics.jsonl")


class RunDirError(ValueError):
    """The run dir cannot be used as asked; the message is one line for the user."""


@contextlib.contextmanager
def claim_run_dir(run_dir: Path, *, resume: bool, overwrite: bool) -> Iterator[None]:
    """Context: `run_dir` locked for this process, and ready for a run.

    Args:
        run_dir: the run's output directory (created if absent).
        resume: the run continues from `checkpoints/last.pt` if there is one.
        overwrite: a fresh run may delete the run that `run_dir` holds.

    Raises:
        RunDirError: another live process trains into `run_dir`, or a fresh run
            (neither `resume` nor `overwrite`) would mix with the run it holds.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with _lock(run_dir):
        if not resume:
            _clear_old_run(run_dir, overwrite)
        yield


@contextlib.contextmanager
def _lock(run_dir: Path) -> Iterator[None]:
    if fcntl is None:
        yield
        return
    path = run_dir / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            raise RunDirError(
                f"run dir {run_dir} is in use by another training (pid {holder}); "
                "wait for it to end or choose another hydra.run.dir"
            ) from None
        with contextlib.suppress(OSError):  # the pid only informs (a full disk)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # releases the lock


def _clear_old_run(run_dir: Path, overwrite: bool) -> None:
    found = [name for name in RUN_FILES if (run_dir / name).exists()]
    if not found:
        return
    if not overwrite:
        raise RunDirError(
            f"run dir {run_dir} already holds a run ({found[0]}): continue it with "
            "train.resume=true, replace it with train.overwrite=true, or choose "
            "another hydra.run.dir"
        )
    for name in (*RUN_FILES, "result.json"):
        (run_dir / name).unlink(missing_ok=True)
    for kept in (run_dir / "checkpoints").glob("step_*.pt"):  # train.keep_last
        kept.unlink()
    shutil.rmtree(run_dir / "tensorboard", ignore_errors=True)
    log.warning("train.overwrite=true: removed the earlier run in %s", run_dir)
