"""The one atomic write and the one UTF-8 text reader."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from nmt.utils.io import atomic_write


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
