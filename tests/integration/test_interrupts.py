"""Training under stop signals at any moment, broken resume files, shared run dirs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from nmt.train import run_train
from nmt.training import loop as loop_module
from nmt.training import seq2seq as seq2seq_module
from nmt.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from nmt.training.progress import append_metrics
from nmt.training.rundir import RunDirError, claim_run_dir
from nmt.training.seq2seq import Trainer
from tests.conftest import REPO, TINY_TRAIN
from tests.integration.test_train import tiny_config


def signal_self(signum: int = signal.SIGINT) -> None:
    os.kill(os.getpid(), signum)


def steps(run: Path) -> list[int]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line)["step"] for line in lines]


def last(run: Path) -> dict:
    return load_checkpoint(run / "checkpoints" / "last.pt")


def assert_same_weights(a: Path, b: Path) -> None:
    x, y = last(a)["model"], last(b)["model"]
    assert x.keys() == y.keys()
    for name in x:
        assert torch.equal(x[name], y[name]), name


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.mark.parametrize("at_step", [10, 12], ids=["periodic", "final"])
def test_a_signal_during_a_validation_saves_and_the_resume_redoes_it(
    tiny_corpus, cache, tmp_path, monkeypatch, at_step
):
    cfg = dict(max_steps=12, valid_every=5)
    straight = run_train(tiny_config(tiny_corpus, cache, **cfg), tmp_path / "a")
    real = Trainer.validate

    def validate(self):
        if self.progress.step == at_step:
            signal_self(signal.SIGINT)  # raises here: the handler cuts it short
        return real(self)

    monkeypatch.setattr(Trainer, "validate", validate)
    stopped = run_train(tiny_config(tiny_corpus, cache, **cfg), tmp_path / "b")
    assert stopped["status"] == "stopped" and stopped["exit_status"] == 130
    assert "SIGINT" in stopped["stop_reason"] and "test_bleu" not in stopped
    saved = last(tmp_path / "b")["progress"]
    assert saved["step"] == at_step and saved["validation_due"]
    assert steps(tmp_path / "b") == [5, 10, 12][: [5, 10, 12].index(at_step)]

    monkeypatch.undo()
    # as if a resumed session logged the due validation and was killed before
    # it rewrote last.pt: the next resume logs that step once
    append_metrics(tmp_path / "b", {"step": at_step, "val_loss": 9.0})
    resumed = run_train(
        tiny_config(tiny_corpus, cache, resume=True, **cfg), tmp_path / "b"
    )
    assert resumed["status"] == "ok" and "exit_status" not in resumed
    assert steps(tmp_path / "b") == steps(tmp_path / "a") == [5, 10, 12]
    assert_same_weights(tmp_path / "a", tmp_path / "b")
    assert resumed["test_bleu"] == straight["test_bleu"]
    assert not last(tmp_path / "b")["progress"]["validation_due"]


def test_a_signal_while_the_average_is_swapped_in_keeps_last_pt_exact(
    tiny_corpus, cache, tmp_path, monkeypatch
):
    """train.ema: a signal while the averaged weights go in waits until the trained
    ones are back, so last.pt never holds a mix and the resume is exact."""
    cfg = dict(max_steps=12, valid_every=5, ema=0.8, test_at_end=False)
    run_train(tiny_config(tiny_corpus, cache, **cfg), tmp_path / "a")
    real_weights = loop_module.WeightAverage.weights
    real_load = torch.nn.Module._load_from_state_dict
    armed = []

    def weights(self, model):
        if self.updates == 10:
            armed.append(True)  # the swap at step 10's validation
        return real_weights(self, model)

    def load(self, state, prefix, *rest):
        real_load(self, state, prefix, *rest)
        if armed and prefix.startswith("decoder"):
            armed.clear()
            signal_self(signal.SIGINT)  # the encoder is loaded, the decoder not

    monkeypatch.setattr(loop_module.WeightAverage, "weights", weights)
    monkeypatch.setattr(torch.nn.Module, "_load_from_state_dict", load)
    stopped = run_train(tiny_config(tiny_corpus, cache, **cfg), tmp_path / "b")
    assert stopped["status"] == "stopped"
    assert last(tmp_path / "b")["progress"]["validation_due"]
    monkeypatch.undo()
    run_train(tiny_config(tiny_corpus, cache, resume=True, **cfg), tmp_path / "b")
    assert steps(tmp_path / "b") == steps(tmp_path / "a") == [5, 10, 12]
    assert_same_weights(tmp_path / "a", tmp_path / "b")
    a, b = last(tmp_path / "a")["ema"], last(tmp_path / "b")["ema"]
    assert all(torch.equal(a["shadow"][k], b["shadow"][k]) for k in a["shadow"])


def test_a_signal_during_the_test_at_the_end_leaves_the_test_to_the_resume(
    tiny_corpus, cache, tmp_path, monkeypatch
):
    cfg = dict(max_steps=6, valid_every=3)
    run = tmp_path / "run"
    real = Trainer.score_best_on_test

    def score(self):
        signal_self(signal.SIGTERM)
        return real(self)

    monkeypatch.setattr(Trainer, "score_best_on_test", score)
    stopped = run_train(tiny_config(tiny_corpus, cache, **cfg), run)
    assert stopped["status"] == "stopped" and stopped["exit_status"] == 143
    assert "during the test" in stopped["stop_reason"]
    monkeypatch.undo()
    resumed = run_train(tiny_config(tiny_corpus, cache, resume=True, **cfg), run)
    assert resumed["status"] == "ok" and "test_bleu" in resumed
    assert steps(run) == [3, 6]


def test_checkpoint_writes_finish_before_a_signal_is_obeyed(
    tiny_corpus, cache, tmp_path, monkeypatch
):
    """Two signals inside the first write (best.pt of step 3): both files are
    written whole, then the run stops and saves last.pt at step 3."""
    written: list[str] = []

    def save(path: Path, payload: dict) -> None:
        if not written:
            signal_self(signal.SIGINT)
            signal_self(signal.SIGINT)  # a second Ctrl-C waits too
        save_checkpoint(path, payload)
        written.append(Path(path).name)

    monkeypatch.setattr(loop_module, "save_checkpoint", save)
    run = tmp_path / "run"
    summary = run_train(
        tiny_config(tiny_corpus, cache, max_steps=9, valid_every=3), run
    )
    assert summary["status"] == "stopped" and summary["exit_status"] == 130
    assert written == ["best.pt", "last.pt", "last.pt"]  # best first (see below)
    assert last(run)["progress"]["step"] == 3 and steps(run) == [3]
    assert load_checkpoint(run / "checkpoints" / "best.pt")["progress"]["step"] == 3
    assert not list((run / "checkpoints").glob(".*.tmp"))


def test_best_pt_is_written_before_last_pt(tiny_corpus, cache, tmp_path, monkeypatch):
    """A kill between the two writes resumes from the older last.pt and redoes
    the validation, so best.pt cannot be lost to a kill during its write."""

    class Killed(Exception):
        pass

    def save(path: Path, payload: dict) -> None:
        if Path(path).name == "last.pt" and payload["progress"]["step"] == 3:
            raise Killed
        save_checkpoint(path, payload)

    run = tmp_path / "run"
    cfg = dict(max_steps=6, valid_every=3, test_at_end=False)
    monkeypatch.setattr(loop_module, "save_checkpoint", save)
    with pytest.raises(Killed):
        run_train(tiny_config(tiny_corpus, cache, **cfg), run)
    assert (run / "checkpoints" / "best.pt").exists()
    assert not (run / "checkpoints" / "last.pt").exists()
    monkeypatch.undo()
    run_train(tiny_config(tiny_corpus, cache, resume=True, **cfg), run)
    assert steps(run) == [3, 6]
    best = load_checkpoint(run / "checkpoints" / "best.pt")["progress"]["step"]
    assert best in (3, 6)


def test_a_signal_during_set_up_stops_before_anything_is_saved(
    tiny_corpus, cache, tmp_path, monkeypatch
):
    real = seq2seq_module.build_tokenizers

    def build(*args, **kwargs):
        signal_self(signal.SIGTERM)
        return real(*args, **kwargs)

    monkeypatch.setattr(seq2seq_module, "build_tokenizers", build)
    run = tmp_path / "run"
    summary = run_train(tiny_config(tiny_corpus, cache), run)
    assert summary["status"] == "stopped" and summary["exit_status"] == 143
    assert not (run / "checkpoints").exists()


def test_a_run_dir_takes_one_training_at_a_time(tmp_path):
    with claim_run_dir(tmp_path, resume=True, overwrite=False):
        with pytest.raises(RunDirError, match=f"pid {os.getpid()}"):
            with claim_run_dir(tmp_path, resume=True, overwrite=False):
                pass
    # a process killed while holding the lock does not hold it any more
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from nmt.training.rundir import claim_run_dir\n"
            "with claim_run_dir(sys.argv[1], resume=True, overwrite=False):\n"
            "    print('locked', flush=True); time.sleep(60)",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        cwd=REPO,
    )
    assert holder.stdout.readline() == b"locked\n"
    with pytest.raises(RunDirError, match="in use by another training"):
        with claim_run_dir(tmp_path, resume=True, overwrite=False):
            pass
    holder.kill()
    holder.wait()
    with claim_run_dir(tmp_path, resume=True, overwrite=False):
        pass


def test_a_fresh_run_into_a_run_dir_refuses_unless_told_to_overwrite(
    tiny_corpus, cache, tmp_path
):
    run = tmp_path / "run"
    cfg = dict(max_steps=3, valid_every=3, test_at_end=False)
    run_train(tiny_config(tiny_corpus, cache, **cfg), run)
    with pytest.raises(RunDirError, match="already holds a run"):
        run_train(tiny_config(tiny_corpus, cache, seed=4, **cfg), run)
    assert steps(run) == [3]
    run_train(tiny_config(tiny_corpus, cache, seed=4, overwrite=True, **cfg), run)
    assert steps(run) == [3]
    assert (
        load_checkpoint(run / "checkpoints" / "last.pt")["config"]["train"]["seed"] == 4
    )


BROKEN = {
    "no optimizer": (lambda p: p.pop("optimizer"), "'optimizer' is missing"),
    "no model": (lambda p: p.pop("model"), "'model' is missing"),
    "no tokenizers": (lambda p: p.pop("tokenizers"), "'tokenizers' is missing"),
    "progress a string": (
        lambda p: p.update(progress="step 3"),
        "'progress' is not a mapping",
    ),
    "unknown progress field": (
        lambda p: p["progress"].update(steps=3),
        "unknown field 'steps'",
    ),
    "shrunken tensor": (
        lambda p: p["model"].update(
            {k: v[:1] for k, v in list(p["model"].items())[:1]}
        ),
        "size mismatch",
    ),
    "edited model config": (
        lambda p: p["config"]["model"].update(hidden_size=64),
        "model config differs",
    ),
    "optimizer of another model": (
        lambda p: p["optimizer"]["param_groups"][0]["params"].pop(),
        "cannot resume from",
    ),
    "bad tokenizer": (
        lambda p: p["tokenizers"].update(src=b"not a model"),
        "cannot resume from",
    ),
    "bad rng": (lambda p: p.update(rng={"python": 1}), "not a saved random"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_resume_from_a_broken_last_pt_is_one_clear_error(
    tiny_corpus, cache, tmp_path, case
):
    run = tmp_path / "run"
    cfg = dict(max_steps=3, valid_every=3, test_at_end=False)
    run_train(tiny_config(tiny_corpus, cache, **cfg), run)
    path = run / "checkpoints" / "last.pt"
    payload = load_checkpoint(path)
    edit, message = BROKEN[case]
    edit(payload)
    save_checkpoint(path, payload)
    with pytest.raises(CheckpointError, match=message) as error:
        run_train(tiny_config(tiny_corpus, cache, resume=True, **cfg), run)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_a_model_too_large_to_allocate_is_one_clear_error(tiny_corpus, cache, tmp_path):
    cfg = tiny_config(tiny_corpus, cache)
    cfg.model.hidden_size = 10**12
    with pytest.raises(ValueError, match="cannot build the model"):
        run_train(cfg, tmp_path / "run")


def test_sigterm_to_the_train_cli_exits_143_and_the_run_resumes(tiny_corpus, tmp_path):
    run = tmp_path / "run"
    args = [
        sys.executable,
        "-m",
        "nmt.train",
        f"data.root={tiny_corpus}",
        *TINY_TRAIN,
        f"train.cache_dir={tmp_path}/c",
        f"hydra.run.dir={run}",
        "train.max_steps=100000",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(args, stderr=subprocess.PIPE, cwd=REPO, env=env)
    deadline = time.monotonic() + 120
    while not (run / "checkpoints" / "last.pt").exists():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=120)[1].decode()
    assert proc.returncode == 143, err
    assert "Traceback" not in err and "train.resume=true" in err
    step = last(run)["progress"]["step"]

    again = subprocess.run(
        [*args[:-1], f"train.max_steps={step + 3}"],
        capture_output=True,
        cwd=REPO,
        env=env,
        timeout=120,
    )
    assert again.returncode == 2 and b"already holds a run" in again.stderr
    again = subprocess.run(
        [*args[:-1], f"train.max_steps={step + 3}", "train.resume=true"],
        capture_output=True,
        cwd=REPO,
        env=env,
        timeout=120,
    )
    assert again.returncode == 0, again.stderr.decode()
    assert last(run)["progress"]["step"] == step + 3


def test_wall_time_counts_validations_and_the_test_and_logs_carry_loss_lines(
    tiny_corpus, cache, tmp_path, monkeypatch, caplog
):
    """Validations and the test count towards wall_time_s; the loss lines reach
    the log (train.log) also when a progress bar is drawn on a terminal; a
    validation before the first log line reports the real tokens/s."""
    real_validate, real_test = Trainer.validate, Trainer.score_best_on_test

    def slow_validate(self):
        time.sleep(0.3)
        return real_validate(self)

    def slow_test(self):
        time.sleep(0.5)
        return real_test(self)

    monkeypatch.setattr(Trainer, "validate", slow_validate)
    monkeypatch.setattr(Trainer, "score_best_on_test", slow_test)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    caplog.set_level("INFO", logger="nmt")
    cfg = dict(max_steps=6, valid_every=3, log_every=2)
    summary = run_train(tiny_config(tiny_corpus, cache, **cfg), tmp_path / "run")
    assert summary["wall_time_s"] >= 2 * 0.3 + 0.5
    assert "step 4 loss" in caplog.text
    records = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert all(json.loads(r)["tokens_per_s"] > 0 for r in records)


def test_tensorboard_curves_hold_each_step_once_across_a_resume(
    tiny_corpus, cache, tmp_path
):
    accumulator = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator",
        reason="needs the tensorboard extra (installed by scripts/test.sh)",
    )
    run = tmp_path / "run"
    cfg = dict(valid_every=3, log_every=2, test_at_end=False)
    run_train(tiny_config(tiny_corpus, cache, max_steps=6, **cfg), run)
    run_train(tiny_config(tiny_corpus, cache, max_steps=9, resume=True, **cfg), run)
    events = accumulator.EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert {"train/loss", "train/lr", "train/tok_s", "val/loss", "val/bleu"} <= set(
        tags
    )
    assert [e.step for e in events.Scalars("val/loss")] == [3, 6, 9]
    assert [e.step for e in events.Scalars("train/loss")] == [2, 4, 6, 8]
    metrics = [
        json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()
    ]
    assert [e.value for e in events.Scalars("val/bleu")] == pytest.approx(
        [m["val_bleu"] for m in metrics], abs=1e-3
    )
