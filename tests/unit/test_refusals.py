"""Bad values and inputs are refused up front with one line, before any work."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nmt.data.parallel import DataConfig
from nmt.evaluate import check_output
from nmt.inference.loading import load_translator
from nmt.inference.translator import Translator
from nmt.models.seq2seq import Seq2Seq
from nmt.search import BeamConfig
from nmt.training.checkpoint import CheckpointError
from nmt.training.progress import LoopConfig
from nmt.utils import memory
from tests.conftest import tiny_model_config

LEGACY = Path(__file__).resolve().parent.parent / "data" / "legacy_seq2seq.pt"


@pytest.mark.parametrize(
    "field,value",
    [("max_len", 0), ("batch_tokens", -1), ("max_sentences", 0), ("bptt", 0)],
)
def test_data_sizes_below_one_are_refused(field, value):
    with pytest.raises(ValueError, match=f"data.{field} must be >= 1"):
        DataConfig(**{field: value})


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.5])
def test_validation_share_must_leave_training_text(fraction):
    with pytest.raises(ValueError, match="val_fraction"):
        DataConfig(val_fraction=fraction)


@pytest.mark.parametrize(
    "field,value",
    [("max_steps", -1), ("max_epochs", -2), ("max_minutes", -0.5), ("patience", -1)],
)
def test_negative_limits_are_refused(field, value):
    with pytest.raises(ValueError, match=f"train.{field} must be >= 0"):
        LoopConfig(**{field: value})
    LoopConfig(**{field: 0})  # 0 = no limit


def test_lr_and_validation_beam_are_checked():
    with pytest.raises(ValueError, match="train.lr"):
        LoopConfig(lr=0.0)
    with pytest.raises(ValueError, match="train.valid_beam"):
        LoopConfig(valid_beam=0)


def test_a_beam_too_large_for_memory_is_refused_before_decoding(tiny_spm, monkeypatch):
    torch.manual_seed(0)
    vocab = tiny_spm.vocab_size
    model = Seq2Seq(tiny_model_config(), src_vocab=vocab, tgt_vocab=vocab)
    translator = Translator(
        model, tiny_spm, tiny_spm, device=torch.device("cpu"), precision="fp32"
    )
    monkeypatch.setattr(memory, "available_bytes", lambda: 10 * 2**20)  # 10 MiB
    with pytest.raises(ValueError, match="use a smaller beam or batch size"):
        translator.translate(["ein mann ."], BeamConfig(beam_size=5000))
    assert len(translator.translate([""], BeamConfig(beam_size=5000))) == 1  # no work
    assert translator.translate(["ein mann ."], BeamConfig(beam_size=2))


def test_evaluate_never_writes_over_data_or_the_checkpoint(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "test.en").write_text("a reference .\n")
    ckpt = tmp_path / "best.pt"
    ckpt.write_bytes(b"x")
    with pytest.raises(ValueError, match="file of the data directory"):
        check_output(data / "test.en", str(data), str(ckpt))
    with pytest.raises(ValueError, match="the checkpoint"):
        check_output(ckpt, str(data), str(ckpt))
    with pytest.raises(ValueError, match="the checkpoint"):  # an ensemble's
        check_output(ckpt, str(data), [str(tmp_path / "other.pt"), str(ckpt)])
    check_output(data / "hyp.en", str(data), str(ckpt))  # a new file: fine
    check_output(tmp_path / "hyp.en", "bentrevett/multi30k", str(ckpt))  # hub data


def test_non_finite_weights_are_refused_at_load(tmp_path):
    payload = torch.load(LEGACY, weights_only=True)
    payload["model"]["output.bias"][3] = float("nan")
    path = tmp_path / "nan.pt"
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="non-finite weights .* output.bias"):
        load_translator(path, device=torch.device("cpu"))
