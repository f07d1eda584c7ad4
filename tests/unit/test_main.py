"""`python -m nmt <command>` and the `nmt` console script dispatch to the entry points."""

from __future__ import annotations

import subprocess
import sys

import pytest

from nmt.__main__ import COMMANDS, main


def test_help_lists_every_command(capsys):
    main(["--help"])
    out = capsys.readouterr().out
    assert all(name in out for name in COMMANDS)


def test_unknown_command_is_a_one_line_error(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["bogus"])
    assert stop.value.code == 2
    assert capsys.readouterr().err.startswith("nmt: error: unknown command 'bogus'")


def test_a_command_runs_its_entry_point(tmp_path, capsys, monkeypatch):
    monkeypatch.delitem(sys.modules, "nmt.sweep_report", raising=False)  # runs fresh
    with pytest.raises(SystemExit) as stop:  # argparse's error: no job dirs
        main(["sweep-report", str(tmp_path)])
    assert stop.value.code == 2
    assert "holds no Hydra job dirs" in capsys.readouterr().err


def test_python_dash_m_nmt_matches_python_dash_m_nmt_dot_command():
    def run(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", *args], capture_output=True, text=True, check=True
        )
        return done.stdout

    assert run("nmt", "translate", "--help") == run("nmt.translate", "--help")
