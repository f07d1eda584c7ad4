"""Files: the one atomic write and the one UTF-8 text reader (bad bytes replaced, with
a warning). Not for what goes into a file (checkpoints, results, caches do that)."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def atomic_write(
    path: str | Path,
    data: bytes | Callable[[BinaryIO], object],
    *,
    check: Callable[[Path], object] | None = None,
) -> None:
    """Replace `path` so that readers see either the old file or the whole new one.

    The content goes to a hidden temporary file beside `path`, created like `open`
    does (permissions from the umask, not mkstemp's 0600), is fsynced and renamed
    over `path`; the directory is fsynced too, so the rename survives a crash. On
    any error the temporary file is removed and an old `path` is left as it was.

    Args:
        path: the destination; missing parent directories are created.
        data: the bytes, or a function writing them to the open binary file
            (e.g. `lambda f: torch.save(obj, f)`).
        check: called with the temporary file's path once it is complete and
            before the rename; raising stops the write.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    f = open(tmp, "xb")  # outside `try`: an existing file is not ours to delete
    try:
        with f:
            if callable(data):
                data(f)
            else:
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if check is not None:
            check(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    # makes the rename itself durable; not possible on every OS/filesystem
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
