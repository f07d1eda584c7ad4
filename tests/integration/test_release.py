"""nmt.export and nmt.average: inference checkpoints, averaged weights, refusals."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from nmt.average import main as average
from nmt.export import main as export
from nmt.inference.loading import load_translator
from nmt.search import BeamConfig
from nmt.train import run_train
from nmt.training.checkpoint import CheckpointError, load_checkpoint
from tests.conftest import PAIRS
from tests.integration.test_train import tiny_config

CPU = torch.device("cpu")
SOURCES = [de for de, _ in PAIRS] + ["", "ein unbekanntes wort xyz ."]


def translations(path: Path) -> list[str]:
    translator, _ = load_translator(path, device=CPU, precision="fp32")
    return translator.translate_best(SOURCES, BeamConfig(beam_size=3))


def refused(run, capsys) -> str:
    with pytest.raises(SystemExit) as exit_:
        run()
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


def test_export_keeps_only_the_inference_state_and_translates_alike(
    tiny_checkpoint, tmp_path
):
    out = tmp_path / "model.pt"
    export([str(tiny_checkpoint), "--out", str(out)])
    payload = load_checkpoint(out)
    assert set(payload) == {
        *("kind", "config", "model", "tokenizers", "exported"),
        *("format", "format_version"),
    }
    weight_bytes = sum(t.numel() * 4 for t in payload["model"].values())
    saved = tiny_checkpoint.stat().st_size - out.stat().st_size
    assert saved > weight_bytes  # Adam's two moments were as big as the weights
    assert translations(out) == translations(tiny_checkpoint)

    half = tmp_path / "model.bf16.pt"
    export([str(out), "--out", str(half), "--dtype", "bf16"])
    weights = load_checkpoint(half)["model"]
    assert all(
        t.dtype == torch.bfloat16 for t in weights.values() if t.is_floating_point()
    )
    assert out.stat().st_size - half.stat().st_size > 0.4 * weight_bytes
    assert len(translations(half)) == len(SOURCES)


def test_export_refusals_are_one_line(tiny_checkpoint, tmp_path, capsys):
    err = refused(
        lambda: export([str(tiny_checkpoint), "--out", str(tiny_checkpoint)]), capsys
    )
    assert "is the checkpoint itself" in err
    err = refused(lambda: export([str(tmp_path / "none.pt"), "--out", "x.pt"]), capsys)
    assert "does not exist" in err


def test_resume_refuses_an_exported_checkpoint(tiny_corpus, tmp_path):
    run, cache = tmp_path / "run", tmp_path / "cache"
    cfg = dict(max_steps=3, valid_every=3, test_at_end=False)
    run_train(tiny_config(tiny_corpus, cache, **cfg), run)
    last = run / "checkpoints" / "last.pt"
    export([str(last), "--out", str(tmp_path / "model.pt")])
    shutil.copy(tmp_path / "model.pt", last)
    with pytest.raises(CheckpointError, match="exported model"):
        run_train(tiny_config(tiny_corpus, cache, resume=True, **cfg), run)


def test_keep_last_and_average(tiny_corpus, tmp_path, capsys):
    run, cache = tmp_path / "run", tmp_path / "cache"
    cfg = dict(max_steps=6, valid_every=2, keep_last=2, test_at_end=False)
    run_train(tiny_config(tiny_corpus, cache, **cfg), run)
    kept = sorted(p.name for p in (run / "checkpoints").glob("step_*.pt"))
    assert kept == ["step_4.pt", "step_6.pt"]
    a, b = (load_checkpoint(run / "checkpoints" / name)["model"] for name in kept)
    assert "optimizer" not in load_checkpoint(run / "checkpoints" / kept[0])

    out = tmp_path / "avg.pt"
    average(["--last", "2", str(run), "--out", str(out)])
    mean = load_checkpoint(out)["model"]
    for name, tensor in a.items():
        torch.testing.assert_close(mean[name], (tensor + b[name]) / 2, msg=name)
    assert len(translations(out)) == len(SOURCES)

    average(["--best", "1", str(run), "--out", str(tmp_path / "best1.pt")])
    best1 = load_checkpoint(tmp_path / "best1.pt")
    assert len(best1["exported"]["averaged"]) == 1
    # files given one by one average the same way
    files = [str(run / "checkpoints" / name) for name in kept]
    average([*files, "--out", str(tmp_path / "avg2.pt")])
    again = load_checkpoint(tmp_path / "avg2.pt")["model"]
    assert all(torch.equal(again[k], mean[k]) for k in mean)

    err = refused(lambda: average(["--last", "3", str(run), "--out", "x.pt"]), capsys)
    assert "fewer than 3" in err
    # a model with another vocabulary cannot be averaged in
    other = tiny_config(tiny_corpus, tmp_path / "cache2", **cfg)
    other.tokenizer.vocab_size = 50
    run_train(other, tmp_path / "other")
    mixed = [files[0], str(tmp_path / "other" / "checkpoints" / "step_6.pt")]
    err = refused(lambda: average([*mixed, "--out", str(tmp_path / "x.pt")]), capsys)
    assert "another vocabulary" in err or "another model config" in err


def test_ema_best_pt_holds_the_average_that_validation_scored(tiny_corpus, tmp_path):
    run, cache = tmp_path / "run", tmp_path / "cache"
    cfg = dict(max_steps=6, valid_every=3, keep_last=2, ema=0.8, test_at_end=False)
    run_train(tiny_config(tiny_corpus, cache, **cfg), run)
    ckpts = run / "checkpoints"
    last, best = load_checkpoint(ckpts / "last.pt"), load_checkpoint(ckpts / "best.pt")
    assert "ema" not in best and last["ema"]["updates"] == 6
    step_6 = load_checkpoint(ckpts / "step_6.pt")["model"]
    for name, avg in last["ema"]["shadow"].items():  # published = the average
        torch.testing.assert_close(step_6[name], avg, atol=0, rtol=0)
    kept = load_checkpoint(ckpts / f"step_{best['progress']['step']}.pt")["model"]
    for name, tensor in kept.items():
        torch.testing.assert_close(best["model"][name], tensor, atol=0, rtol=0)
    records = (run / "metrics.jsonl").read_text().splitlines()
    assert all('"val_loss_trained"' in r and '"val_bleu"' in r for r in records)
    assert len(translations(run / "checkpoints" / "best.pt")) == len(SOURCES)
