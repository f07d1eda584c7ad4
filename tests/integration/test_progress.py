"""Progress on a terminal, silence in pipes: translate and evaluate show a bar of
lines done on stderr only when it is a terminal (and the output is not)."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys

import pexpect
import pytest

from nmt.inference.loading import load_translator
from nmt.search import BeamConfig
from tests.conftest import PAIRS, REPO

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TERM": "dumb"}
LINES = [src for src, _ in PAIRS] * 3 + ["", "   ", PAIRS[0][0], ""]  # 40 lines


def on_terminal(command: str) -> str:
    """What a terminal shows while `command` (a shell line) runs."""
    child = pexpect.spawn(
        "bash",
        ["-c", command],
        cwd=str(REPO),
        env=ENV,
        encoding="utf-8",
        timeout=120,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    return child.before


def test_translator_reports_every_line_once(tiny_checkpoint):
    import torch

    translator, _ = load_translator(tiny_checkpoint, device=torch.device("cpu"))
    done: list[int] = []
    translator.translate(
        LINES, BeamConfig(beam_size=2, batch_size=3), progress=done.append
    )
    assert sum(done) == len(LINES) and len(done) > 5  # per batch, and the empty lines


def test_translate_shows_progress_on_a_terminal_only(tiny_checkpoint, tmp_path):
    source = tmp_path / "in.de"
    source.write_text("".join(line + "\n" for line in LINES))
    translate = (
        f"{shlex.quote(sys.executable)} -m nmt.translate --threads 1 --batch-size 4 "
        f"--ckpt {shlex.quote(str(tiny_checkpoint))} --input {shlex.quote(str(source))}"
    )
    out = tmp_path / "out.en"
    shown = on_terminal(f"{translate} > {shlex.quote(str(out))}")
    assert "translating" in shown and f"{len(LINES)}/{len(LINES)}" in shown
    assert len(out.read_text().splitlines()) == len(LINES)
    # translations on the terminal are their own progress: no bar among them
    assert "translating:" not in on_terminal(translate).replace("translated 40", "")
    piped = subprocess.run(
        [*shlex.split(translate), "--output", str(out)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=ENV,
        timeout=120,
    )
    assert piped.returncode == 0 and piped.stderr == f"translated {len(LINES)} lines\n"


def test_evaluate_writes_beside_the_model_and_shows_progress(
    tiny_checkpoint, tiny_corpus, tmp_path
):
    ckpt = tmp_path / "run" / "checkpoints" / "best.pt"
    ckpt.parent.mkdir(parents=True)
    shutil.copy(tiny_checkpoint, ckpt)
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    args = [f"data.root={tiny_corpus}", "search.beam_size=2", "threads=1"]
    evaluate = f"cd {shlex.quote(str(cwd))} && {shlex.quote(sys.executable)} -m "
    evaluate += f"nmt.evaluate --ckpt {shlex.quote(str(ckpt))} " + " ".join(args)
    shown = on_terminal(f"PYTHONPATH={shlex.quote(str(REPO))} {evaluate}")
    assert "translating test" in shown and "4/4" in shown and "BLEU = " in shown
    run_dir = tmp_path / "run" / "evaluate" / "best.test.beam2"
    assert (run_dir / "result.json").is_file() and (run_dir / "hyp.test.en").is_file()
    assert "BLEU" in (run_dir / "evaluate.log").read_text()  # the log is not empty
    assert list(cwd.iterdir()) == []  # no outputs/ in the current dir


@pytest.mark.parametrize("args", [["--ckpt"], ["split=test"]])
def test_evaluate_without_a_checkpoint_is_one_line(args, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "nmt.evaluate", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**ENV, "PYTHONPATH": str(REPO)},
        timeout=60,
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "ckpt" in proc.stderr and list(tmp_path.iterdir()) == []
