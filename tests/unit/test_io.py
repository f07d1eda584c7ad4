"""The one atomic write and the one UTF-8 text reader."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from nmt.utils.io import atomic_write, decode_utf8, read_lines, read_text


class Boom(Exception):
    pass


def explode(f) -> None:
    raise Boom


@pytest.fixture
def umask():
    """Set the process umask for one test (restored afterwards)."""
    old = os.umask(0o022)
    yield os.umask
    os.umask(old)


# -- atomic_write ------------------------------------------------------------------
def test_writes_bytes_or_a_writer_and_creates_parents(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "file.bin"
    atomic_write(path, b"first")
    assert path.read_bytes() == b"first"
    atomic_write(path, lambda f: f.write(b"second"))
    assert path.read_bytes() == b"second"
    assert [p.name for p in path.parent.iterdir()] == ["file.bin"]


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_permissions_follow_the_umask(tmp_path: Path, umask, mask: int) -> None:
    umask(mask)
    path = tmp_path / "file"
    atomic_write(path, b"x")
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask


@pytest.mark.parametrize("where", ["writer", "check"])
def test_a_failing_write_keeps_the_old_file_and_no_temp_file(
    tmp_path: Path, where: str
) -> None:
    path = tmp_path / "file"
    atomic_write(path, b"old")

    def writer(f) -> None:
        f.write(b"half")
        if where == "writer":
            raise Boom

    def check(tmp: Path) -> None:
        assert tmp.parent == tmp_path and tmp.read_bytes() == b"half"
        raise Boom

    with pytest.raises(Boom):
        atomic_write(path, writer, check=check)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["file"]


def test_a_failing_first_write_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(Boom):
        atomic_write(tmp_path / "file", explode)
    assert list(tmp_path.iterdir()) == []


# -- reading UTF-8 text --------------------------------------------------------------
def test_decode_replaces_bad_bytes_and_says_so() -> None:
    assert decode_utf8("Grüße".encode()) == ("Grüße", True)
    assert decode_utf8(b"ok \xff \xe2\x82") == ("ok \ufffd \ufffd", False)


def test_read_text_replaces_bad_bytes_with_one_warning(tmp_path: Path, capsys) -> None:
    path = tmp_path / "t.txt"
    genuine = "\ufffd".encode()  # a real U+FFFD is no bad byte
    path.write_bytes(b"ok\n\xff bad\nfine " + genuine + b"\nbad \xe2\x82\n")
    assert read_text(path) == "ok\n\ufffd bad\nfine \ufffd\nbad \ufffd\n"
    assert read_text(path) == read_text(path)  # read again: no second warning
    warnings = capsys.readouterr().err.splitlines()
    assert warnings == [
        f"warning: invalid UTF-8 in {path} replaced by U+FFFD on 2 line(s), "
        "the first is line 2"
    ]


def test_a_genuine_replacement_character_is_no_warning(tmp_path: Path, capsys) -> None:
    path = tmp_path / "t.txt"
    path.write_text("fine \ufffd\n", encoding="utf-8")
    assert read_text(path) == "fine \ufffd\n"
    assert capsys.readouterr().err == ""


def test_read_lines_splits_on_newline_only(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("a\r\nb\u2028c\n\nd", encoding="utf-8", newline="")
    assert read_lines(path) == ["a", "b\u2028c", "", "d"]
    path.write_text("a\n", encoding="utf-8")
    assert read_lines(path) == ["a"]
    path.write_text("", encoding="utf-8")
    assert read_lines(path) == []


def test_a_full_disk_names_the_file_and_keeps_the_old_one(tmp_path: Path) -> None:
    path = tmp_path / "last.pt"
    path.write_bytes(b"old")

    def disk_full(f) -> None:
        f.write(b"half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(OSError, match="No space left on device") as error:
        atomic_write(path, disk_full)
    assert error.value.filename == str(path) and str(path) in str(error.value)
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["last.pt"]
