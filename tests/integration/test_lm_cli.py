"""nmt.generate and nmt.repl in subprocesses: output, pipes, a real pty, wrong kinds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pexpect
import pytest

from tests.conftest import PAIRS, REPO

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def run(args: list[str], stdin: str = "", env: dict | None = None):
    return subprocess.run(
        [sys.executable, "-m", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env=env or ENV,
    )


def test_generate_samples_reproducibly_and_warns_on_unknown(tiny_lm_checkpoint):
    args = ["nmt.generate", "--ckpt", str(tiny_lm_checkpoint), "--threads", "1"]
    args += ["--prompt", "ROMEO€:", "--max-chars", "40", "--num-samples", "2"]
    first = run([*args, "--seed", "3", "--top-k", "5"])
    assert first.returncode == 0, first.stderr
    samples = first.stdout.split("\n" + "-" * 40 + "\n")
    assert len(samples) == 2 and all(s.startswith("ROMEO€:") for s in samples)
    assert "seed 3" in first.stderr and "unknown to the model" in first.stderr
    assert run([*args, "--seed", "3", "--top-k", "5"]).stdout == first.stdout


def test_generate_beam_prints_the_nbest(tiny_lm_checkpoint):
    proc = run(
        ["nmt.generate", "--ckpt", str(tiny_lm_checkpoint), "--prompt", "JULIET:"]
        + ["--beam", "3", "--num-samples", "2", "--max-chars", "20"]
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("JULIET:") == 2
    assert "hypothesis 2: log-prob" in proc.stderr
    bad = run(
        ["nmt.generate", "--ckpt", str(tiny_lm_checkpoint), "--beam", "2"]
        + ["--num-samples", "3"]
    )
    assert bad.returncode == 2 and "--num-samples 3" in bad.stderr


@pytest.mark.parametrize(
    ("option", "value", "says"),
    [
        ("--beam", "-2", "--beam must be >= 0"),
        ("--temperature", "nan", "temperature must be a finite number"),
        ("--temperature", "inf", "temperature must be a finite number"),
    ],
)
def test_generate_bad_values_are_one_line_before_any_log(
    tiny_lm_checkpoint, option, value, says
):
    proc = run(["nmt.generate", "--ckpt", str(tiny_lm_checkpoint), option, value])
    err = proc.stderr.strip()
    assert proc.returncode == 2 and proc.stdout == "", err
    assert len(err.splitlines()) == 1 and says in err, err  # no "seed N" first


def test_wrong_checkpoint_kind_is_one_line(tiny_lm_checkpoint, tiny_checkpoint):
    for prog, ckpt, message in (
        ("nmt.generate", tiny_checkpoint, "is a translation model"),
        ("nmt.translate", tiny_lm_checkpoint, "is a character language model"),
    ):
        proc = run([prog, "--ckpt", str(ckpt)], stdin="hallo\n")
        err = proc.stderr.strip()
        assert proc.returncode == 2 and message in err, err
        assert len(err.splitlines()) == 1 and "Traceback" not in err


def test_repl_pipes_answer_one_line_per_line(tiny_lm_checkpoint, tiny_checkpoint):
    lm = run(
        ["nmt.repl", "--ckpt", str(tiny_lm_checkpoint), "--threads", "1"],
        stdin=":len 30\n:seed 1\nROMEO:\n:beam x\nJULIET:\nA\rB\nC\u2028D\x85E\n",
    )
    assert lm.returncode == 0, lm.stderr
    lines = lm.stdout.split("\n")
    assert len(lines) == 8 and lines[-1] == ""  # a lone \r does not end a line
    assert len(lm.stdout.splitlines()) == 7  # nor any other break
    assert lines[6].startswith("C\\u2028D\\u0085E")
    assert lines[2].startswith("ROMEO:") and lines[4].startswith("JULIET:")
    assert lines[3].startswith("error: :beam needs")
    assert lines[5].startswith("A\\rB")  # the answer escapes it
    mt = run(
        ["nmt.repl", "--ckpt", str(tiny_checkpoint), "--threads", "1"],
        stdin=f"{PAIRS[0][0]}\n:nbest 2\n\n{PAIRS[1][0]}\n:help\n",
    )
    assert mt.returncode == 0, mt.stderr
    lines = mt.stdout.split("\n")
    assert len(lines) == 6 and lines[2] == "" and lines[1].startswith("mode=beam")
    assert "\t" not in lines[0] and len(lines[3].split("\t")) == 2  # the 2-best
    assert " | :attn [FILE.png]  the last" in lines[4] and "\\n" not in lines[4]
    assert "translation de->en" in mt.stderr


def test_repl_on_a_terminal(tiny_lm_checkpoint, tmp_path):
    child = pexpect.spawn(
        sys.executable,
        ["-m", "nmt.repl", "--ckpt", str(tiny_lm_checkpoint), "--threads", "1"],
        cwd=str(REPO),
        env={**ENV, "TERM": "dumb", "HOME": str(tmp_path)},
        encoding="utf-8",
        timeout=30,
        # as from a terminal: a suite started in the background by a shell without
        # job control inherits SIGINT ignored, and the REPL would never see Ctrl-C
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        child.expect_exact("lm> ")
        child.sendline(":beam 2")
        child.expect_exact("mode=beam beam=2")
        child.expect_exact("lm> ")
        child.sendline(":len 15")
        child.expect_exact("lm> ")
        child.sendline("ROMEO:")
        child.expect(r"\[1\] log-prob -?\d+\.\d+\r?\nROMEO:")
        child.expect_exact("lm> ")
        # Ctrl-C at the prompt: a fresh prompt. Sent once the prompt is read (a
        # SIGINT in the instant the prompt appears may land in a garbage-collection
        # callback, where Python drops it, and is lost like an early keypress)
        time.sleep(0.5)
        child.sendintr()
        child.expect_exact("lm> ")
        child.sendline(":temp 0")  # greedy: never ends early with EOS
        child.expect_exact("lm> ")
        child.sendline(":len 10000")  # the most it allows: seconds of work
        child.expect_exact("lm> ")
        child.sendline("JULIET:")
        child.expect(r"\nJULIET:[\s\S]{20}")  # shown while it is generated
        time.sleep(0.5)
        child.sendintr()  # Ctrl-C while generating: the text so far, a note
        child.expect_exact("\n[stopped]")  # (not "[interrupted]": it stopped)
        child.expect_exact("lm> ")
        child.sendline(":quit")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0
    history = tmp_path / ".cache" / "nmt" / "repl_history"
    assert ":beam 2" in history.read_text()


def test_repl_time_limit_out_of_range_is_one_line(tiny_lm_checkpoint):
    args = ["nmt.repl", "--ckpt", str(tiny_lm_checkpoint), "--max-seconds", "0"]
    proc = run(args, stdin="x\n")
    err = proc.stderr.strip()
    assert proc.returncode == 2 and "--max-seconds must be between 0.1" in err, err
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize("ckpt", ["missing.pt"])
def test_repl_bad_checkpoint_is_one_line(ckpt, tmp_path):
    proc = run(["nmt.repl", "--ckpt", str(tmp_path / ckpt)], stdin="x\n")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1


def test_train_cli_shakespeare_char_experiment_on_tiny_text(tiny_text_file, tmp_path):
    proc = run(
        [
            "nmt.train",
            "experiment=shakespeare_char",
            f"data.path={tiny_text_file}",
            "data.batch_size=4",
            "data.bptt=16",
            "model.hidden_size=16",
            "model.embed_size=8",
            "train.max_steps=6",
            "train.valid_every=3",
            "train.threads=1",
            "train.precision=fp32",
            f"hydra.run.dir={tmp_path}",
        ]
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "checkpoints" / "best.pt").is_file()
    assert (tmp_path / "checkpoints" / "last.pt").is_file()
    records = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert len(records) == 2 and '"val_bpc"' in records[0]
