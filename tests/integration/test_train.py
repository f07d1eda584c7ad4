"""Tiny end-to-end training: overfitting, checkpoints, exact resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from nmt.config import TrainConfig
from nmt.data.parallel import DataConfig
from nmt.data.tokenizer import TokenizerConfig
from nmt.inference.loading import load_translator
from nmt.search import BeamConfig
from nmt.train import run_train
from nmt.training.checkpoint import load_checkpoint
from nmt.training.seq2seq import LoopConfig, Trainer
from tests.conftest import PAIRS, tiny_model_config


def tiny_config(
    corpus: Path, cache: Path, *, sample_alpha: float = 0.0, **loop
) -> TrainConfig:
    values = dict(
        seed=3,
        lr=0.01,
        max_steps=40,
        valid_every=20,
        threads=1,
        precision="fp32",
        cache_dir=str(cache),
        log_every=10,
    )
    values.update(loop)
    return TrainConfig(
        data=DataConfig(
            root=str(corpus),
            val_split="val",
            test_split="test",
            batch_tokens=40,
            max_sentences=4,
        ),
        tokenizer=TokenizerConfig(
            vocab_size=60, hard_vocab_limit=False, sample_alpha=sample_alpha
        ),
        model=tiny_model_config(hidden_size=32, embed_size=24, dropout=0.1),
        train=LoopConfig(**values),
        search=BeamConfig(beam_size=1, batch_size=8),
    )


def test_tiny_model_overfits_and_reproduces_targets(tiny_corpus, tmp_path):
    cfg = tiny_config(tiny_corpus, tmp_path / "cache", max_steps=200, valid_every=50)
    summary = run_train(cfg, tmp_path / "run")
    records = [
        json.loads(x)
        for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    ]
    assert {
        "step",
        "epoch",
        "val_loss",
        "val_ppl",
        "val_bleu",
        "val_chrf",
        "tokens_per_s",
    } <= set(records[0])
    assert records[-1]["val_loss"] < 0.3 * records[0]["val_loss"]
    assert summary["steps"] == 200
    translator, _ = load_translator(
        tmp_path / "run" / "checkpoints" / "best.pt",
        device=torch.device("cpu"),
        precision="fp32",
    )
    sources = [de for de, _ in PAIRS]
    outputs = translator.translate_best(sources, BeamConfig(beam_size=1, batch_size=5))
    exact = sum(out == en for out, (_, en) in zip(outputs, PAIRS))
    assert exact >= 8, outputs
    assert (tmp_path / "run" / "checkpoints" / "last.pt").is_file()
    # joint vocabulary, target side restricted to the English pieces
    tgt_vocab = translator.tgt_tok.vocab_size
    assert tgt_vocab < translator.src_tok.vocab_size
    assert translator.model.output.out_features == tgt_vocab


def test_shared_embeddings_keep_the_whole_joint_vocabulary(tiny_corpus, tmp_path):
    cfg = tiny_config(tiny_corpus, tmp_path / "cache")
    cfg.model.share_embeddings = True
    trainer = Trainer(cfg, tmp_path / "run")
    assert trainer.tgt_tok.vocab_size == trainer.src_tok.vocab_size
    assert trainer.model.encoder.embedding is trainer.model.decoder.embedding


class Killed(Exception):
    pass


@pytest.mark.parametrize("sample_alpha", [0.0, 0.3])
def test_resume_after_kill_equals_uninterrupted(
    tiny_corpus, tmp_path, monkeypatch, sample_alpha
):
    """Also with subword regularization: the resumed epoch is segmented again as
    the uninterrupted run segmented it (seeded by train.seed and the epoch)."""
    cache = tmp_path / "cache"
    sampling = dict(sample_alpha=sample_alpha)
    straight = tiny_config(
        tiny_corpus, cache, max_steps=30, valid_every=1000, save_every=5, **sampling
    )
    run_train(straight, tmp_path / "a")

    real_step = Trainer.train_step

    def dies_at_13(self, indices):
        if self.progress.step == 12:
            raise Killed  # sudden death mid-run: no final save, last.pt is from step 10
        return real_step(self, indices)

    monkeypatch.setattr(Trainer, "train_step", dies_at_13)
    with pytest.raises(Killed):
        run_train(straight, tmp_path / "b")
    monkeypatch.setattr(Trainer, "train_step", real_step)
    killed = load_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt")["progress"]
    assert killed["step"] == 10 and killed["epoch"] > 0 and killed["batch"] > 0
    resumed = tiny_config(
        tiny_corpus,
        cache,
        max_steps=30,
        valid_every=1000,
        save_every=5,
        resume=True,
        **sampling,
    )
    run_train(resumed, tmp_path / "b")
    a = load_checkpoint(tmp_path / "a" / "checkpoints" / "last.pt")
    b = load_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt")
    assert a["progress"]["step"] == b["progress"]["step"] == 30
    for name, tensor in a["model"].items():
        torch.testing.assert_close(b["model"][name], tensor, atol=0, rtol=0, msg=name)
    for key in ("epoch", "batch", "tokens", "lr"):
        assert a["progress"][key] == b["progress"][key]


def test_a_validation_logged_before_a_kill_is_logged_once(tiny_corpus, tmp_path):
    """Killed after metrics.jsonl got step 10's validation but before last.pt was
    rewritten: the resumed run redoes steps 6-10 and logs step 10 once; stray
    temporary files of interrupted writes are removed."""
    cache, run = tmp_path / "cache", tmp_path / "run"
    ckpts = run / "checkpoints"
    run_train(tiny_config(tiny_corpus, cache, max_steps=5, valid_every=5), run)
    step_5 = (ckpts / "last.pt").read_bytes()
    again = dict(max_steps=10, valid_every=5, resume=True, test_at_end=False)
    run_train(tiny_config(tiny_corpus, cache, **again), run)
    (ckpts / "last.pt").write_bytes(step_5)  # the kill: last.pt still at step 5
    (ckpts / ".last.pt.0badc0de.tmp").write_bytes(b"half a checkpoint")
    run_train(tiny_config(tiny_corpus, cache, **again), run)
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [5, 10]
    assert not list(ckpts.glob(".*.tmp"))


def test_same_seed_same_result(tiny_corpus, tmp_path):
    cache = tmp_path / "cache"
    for name in ("x", "y"):
        run_train(
            tiny_config(tiny_corpus, cache, max_steps=15, valid_every=0),
            tmp_path / name,
        )
    x = load_checkpoint(tmp_path / "x" / "checkpoints" / "last.pt")["model"]
    y = load_checkpoint(tmp_path / "y" / "checkpoints" / "last.pt")["model"]
    assert all(torch.equal(x[k], y[k]) for k in x)


def test_resume_with_other_model_config_is_refused(tiny_corpus, tmp_path):
    cache = tmp_path / "cache"
    run_train(
        tiny_config(tiny_corpus, cache, max_steps=5, valid_every=0), tmp_path / "r"
    )
    cfg = tiny_config(tiny_corpus, cache, max_steps=10, valid_every=0, resume=True)
    cfg.model.hidden_size = 16
    with pytest.raises(ValueError, match="model config differs"):
        run_train(cfg, tmp_path / "r")


def test_subword_sampling_is_for_the_training_pairs_only(tiny_corpus, tmp_path):
    """Each epoch samples the training pairs' segmentations (seeded by the epoch);
    validation, its translations and the first (unsampled) encoding do not."""
    cache = tmp_path / "cache"
    cfg = tiny_config(tiny_corpus, cache, sample_alpha=0.2)
    trainer = Trainer(cfg, tmp_path / "run")
    src, tgt = trainer.src_tok, trainer.tgt_tok
    lines = [de for de, _ in PAIRS], [en for _, en in PAIRS]
    best = (src.encode_batch(lines[0]), tgt.encode_batch(lines[1]))
    assert (trainer.train_data.src, trainer.train_data.tgt) == best
    epochs = []
    for epoch in (0, 1, 0):
        trainer.progress.epoch = epoch
        batches = trainer.epoch_batches()
        epochs.append((trainer.train_data.src, trainer.train_data.tgt, batches))
    assert epochs[0] == epochs[2] and epochs[0][:2] != epochs[1][:2]
    assert epochs[0][:2] != best and epochs[1][:2] != best
    val_src, val_tgt = trainer.val_data.src, trainer.val_data.tgt
    assert (val_src, val_tgt) == (best[0][:4], best[1][:4])  # val: the first 4
    assert [trainer.translator.encode(line) for line in lines[0]] == best[0]
    again = Trainer(cfg, tmp_path / "again", stop=None)
    again.epoch_batches()  # epoch 0 in another trainer: the same segmentations
    assert (again.train_data.src, again.train_data.tgt) == epochs[0][:2]
