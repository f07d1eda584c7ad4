"""Tiny char LM training: loss falls, stateful TBPTT, run dir, exact resume."""

from __future__ import annotations

import json

import pytest
import torch

from nmt.data.chars import CharTokenizer
from nmt.data.parallel import DataError
from nmt.models.lm import CharLM
from nmt.train import run_train
from nmt.training.checkpoint import load_checkpoint
from nmt.training.lm import LMTrainer
from tests.conftest import TINY_TEXT, tiny_lm_train_config


def test_loss_falls_and_run_dir_has_the_translation_layout(tiny_text_file, tmp_path):
    cfg = tiny_lm_train_config(tiny_text_file, max_steps=80, valid_every=20)
    summary = run_train(cfg, tmp_path)
    records = [
        json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()
    ]
    assert {"step", "epoch", "val_loss", "val_bpc", "tokens_per_s"} <= set(records[0])
    assert [r["step"] for r in records] == [20, 40, 60, 80]
    assert records[-1]["val_loss"] < 0.6 * records[0]["val_loss"]
    assert records[0]["val_bpc"] == pytest.approx(
        records[0]["val_loss"] / 0.693147, 1e-3
    )
    assert summary["steps"] == 80 and summary["best_val_loss"] == min(
        r["val_loss"] for r in records
    )
    best = load_checkpoint(tmp_path / "checkpoints" / "best.pt")
    assert best["kind"] == "lm" and best["config"]["task"] == "lm"
    chars = CharTokenizer.from_bytes(best["tokenizers"]["chars"])
    assert set(chars.chars) == set(TINY_TEXT[: len(TINY_TEXT) - len(TINY_TEXT) // 10])
    assert best["hidden"].shape == (4, 2, 2 * 32)  # (streams, layers, hidden ++ cell)
    assert (tmp_path / "checkpoints" / "last.pt").is_file()
    assert json.loads((tmp_path / "result.json").read_text())["steps"] == 80


def test_state_carries_from_batch_to_batch(tiny_text_file, tmp_path, monkeypatch):
    calls = []  # (state in, state out) of every training forward pass
    real_forward = CharLM.forward

    def recording(self, tokens, hidden=None):
        logits, out = real_forward(self, tokens, hidden)
        if self.training:
            given = None if hidden is None else hidden.detach().clone()
            calls.append((given, out.detach().clone(), hidden))
        return logits, out

    monkeypatch.setattr(CharLM, "forward", recording)
    cfg = tiny_lm_train_config(tiny_text_file, max_steps=14, valid_every=0)
    trainer = LMTrainer(cfg, tmp_path)
    windows = len(trainer.train_stream)
    trainer.run()
    assert len(calls) == 14 and windows < 14
    for k, (given, _, raw) in enumerate(calls):
        if k % windows == 0:
            assert given is None  # every epoch starts from zeros
            continue
        torch.testing.assert_close(given, calls[k - 1][1], atol=0, rtol=0)
        assert not raw.requires_grad  # detached: the gradient stops at the edge


class Killed(Exception):
    pass


def test_resume_after_kill_equals_uninterrupted(tiny_text_file, tmp_path, monkeypatch):
    def config(**extra):
        return tiny_lm_train_config(
            tiny_text_file, max_steps=25, valid_every=1000, save_every=5, **extra
        )

    run_train(config(), tmp_path / "a")
    real_step = LMTrainer.train_step

    def dies_at_13(self, window):
        if self.progress.step == 12:
            raise Killed  # no final save: last.pt is from step 10, mid-epoch
        return real_step(self, window)

    monkeypatch.setattr(LMTrainer, "train_step", dies_at_13)
    with pytest.raises(Killed):
        run_train(config(), tmp_path / "b")
    monkeypatch.setattr(LMTrainer, "train_step", real_step)
    saved = load_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt")
    assert saved["progress"]["step"] == 10 and saved["progress"]["batch"] > 0
    assert saved["hidden"] is not None
    run_train(config(resume=True), tmp_path / "b")
    a = load_checkpoint(tmp_path / "a" / "checkpoints" / "last.pt")
    b = load_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt")
    assert a["progress"]["step"] == b["progress"]["step"] == 25
    for name, tensor in a["model"].items():
        torch.testing.assert_close(b["model"][name], tensor, atol=0, rtol=0, msg=name)
    torch.testing.assert_close(b["hidden"], a["hidden"], atol=0, rtol=0)
    for key in ("epoch", "batch", "tokens", "lr", "best_loss"):
        assert a["progress"][key] == b["progress"][key]


def test_resume_with_other_streams_or_kind_is_refused(tiny_text_file, tmp_path):
    run_train(tiny_lm_train_config(tiny_text_file, max_steps=5), tmp_path)
    cfg = tiny_lm_train_config(tiny_text_file, max_steps=8, resume=True)
    cfg.data.batch_size = 2
    with pytest.raises(ValueError, match="data.batch_size"):
        LMTrainer(cfg, tmp_path)
    cfg = tiny_lm_train_config(tiny_text_file, resume=True)
    cfg.task = "translation"
    with pytest.raises(ValueError, match="'lm' checkpoint"):
        run_train(cfg, tmp_path)


def test_lm_needs_a_text_file(tmp_path):
    cfg = tiny_lm_train_config(tmp_path / "x.txt")
    cfg.data.path = ""
    with pytest.raises(ValueError, match="data.path"):
        run_train(cfg, tmp_path)
    cfg.data.path = str(tmp_path / "missing.txt")
    with pytest.raises(DataError, match="text file not found"):
        run_train(cfg, tmp_path)
    cfg.task = "poetry"
    with pytest.raises(ValueError, match="unknown task"):
        run_train(cfg, tmp_path)


def test_ema_is_validated_published_and_resumed_exactly(
    tiny_text_file, tmp_path, monkeypatch
):
    def config(**extra):
        return tiny_lm_train_config(
            tiny_text_file, max_steps=24, valid_every=8, keep_last=2, ema=0.9, **extra
        )

    run_train(config(), tmp_path / "a")
    ckpts = tmp_path / "a" / "checkpoints"
    last, best = load_checkpoint(ckpts / "last.pt"), load_checkpoint(ckpts / "best.pt")
    step = load_checkpoint(ckpts / "step_24.pt")
    assert "ema" not in best and last["ema"]["updates"] == 24
    for name, avg in last["ema"]["shadow"].items():  # published = the average
        torch.testing.assert_close(step["model"][name], avg, atol=0, rtol=0)
        assert not torch.equal(avg, last["model"][name])  # training keeps its own
    # validation scored the average: re-scoring step_24's weights gives its record
    records = [json.loads(x) for x in (tmp_path / "a" / "metrics.jsonl").open()]
    assert records[-1]["val_loss_trained"] != records[-1]["val_loss"]
    trainer = LMTrainer(config(), tmp_path / "c")
    trainer.model.load_state_dict(step["model"])
    assert trainer.validate()["val_loss"] == pytest.approx(
        records[-1]["val_loss"], abs=1e-4
    )

    real_step = LMTrainer.train_step

    def dies_at_13(self, window):
        if self.progress.step == 12:
            raise Killed
        return real_step(self, window)

    monkeypatch.setattr(LMTrainer, "train_step", dies_at_13)
    with pytest.raises(Killed):
        run_train(config(), tmp_path / "b")
    monkeypatch.setattr(LMTrainer, "train_step", real_step)
    run_train(config(resume=True), tmp_path / "b")
    resumed = load_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt")
    for name, avg in last["ema"]["shadow"].items():
        torch.testing.assert_close(resumed["ema"]["shadow"][name], avg, atol=0, rtol=0)


def test_cosine_schedule_reaches_min_lr_at_max_steps(tiny_text_file, tmp_path):
    cfg = tiny_lm_train_config(
        tiny_text_file,
        max_steps=12,
        valid_every=4,
        schedule="cosine",
        warmup_steps=2,
        min_lr=1e-4,
    )
    run_train(cfg, tmp_path)
    lrs = [
        json.loads(x)["lr"]
        for x in (tmp_path / "metrics.jsonl").read_text().splitlines()
    ]
    last = load_checkpoint(tmp_path / "checkpoints" / "last.pt")["progress"]
    assert last["lr"] == pytest.approx(1e-4) and lrs[0] > lrs[-1]
