"""Files: the one atomic write and the one UTF-8 text reader (bad bytes replaced, with
a warning). Not for what goes into a file (checkpoints, results, caches decide)."""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
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
    except OSError as error:  # a full disk: say which file could not be written
        tmp.unlink(missing_ok=True)
        raise naming(error, path) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def naming(error: OSError, path: str | Path) -> OSError:
    """`error` with `path` as its file name if it has none (a failed write to an
    open file, e.g. ENOSPC, does not name the file in its message)."""
    if error.filename is not None or error.errno is None:
        return error
    return type(error)(error.errno, error.strerror or str(error), str(path))


def _fsync_dir(directory: Path) -> None:
    # makes the rename itself durable; not possible on every OS/filesystem
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def decode_utf8(raw: bytes) -> tuple[str, bool]:
    """`raw` as text with invalid UTF-8 replaced by U+FFFD, and whether it was valid."""
    try:
        return raw.decode("utf-8"), True
    except UnicodeDecodeError:
        return raw.decode("utf-8", errors="replace"), False


_warned: set[tuple[str, int, int]] = set()  # (file, size, mtime) warned about


def read_text(path: str | Path) -> str:
    """The whole file as text. Invalid UTF-8 is replaced by U+FFFD, with a warning
    on stderr that names the file and its bad lines (once per file and process:
    training reads its corpus more than once)."""
    path = Path(path)
    raw = path.read_bytes()
    text, valid = decode_utf8(raw)
    if not valid:
        status = path.stat()
        key = (str(path.resolve()), status.st_size, status.st_mtime_ns)
        if key not in _warned:
            _warned.add(key)
            lines = enumerate(raw.split(b"\n"), start=1)
            bad = [n for n, line in lines if not decode_utf8(line)[1]]
            print(
                f"warning: invalid UTF-8 in {path} replaced by U+FFFD on "
                f"{len(bad)} line(s), the first is line {bad[0]}",
                file=sys.stderr,
            )
    return text


def read_lines(path: str | Path) -> list[str]:
    """The lines of a text file read by `read_text`. Only "\\n" ends a line (not
    U+2028 and the like), a trailing "\\r" is dropped, a final newline adds no line."""
    lines = read_text(path).split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line.rstrip("\r") for line in lines]
