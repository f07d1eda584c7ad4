"""Checkpoints written before the package restructuring (tests/data/legacy_*.pt,
with what that code translated and generated from them in legacy_outputs.json)
load and decode as they did, on the fast path and on the reference path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from nmt.inference.loading import load_generator, load_translator
from nmt.search import BeamConfig
from tests.conftest import PAIRS

DATA = Path(__file__).resolve().parent.parent / "data"
CPU = torch.device("cpu")
EXPECTED = json.loads((DATA / "legacy_outputs.json").read_text(encoding="utf-8"))


def same(got: list, expected: list) -> None:
    assert [text for text, _ in got] == [text for text, _ in expected]
    for (_, a), (_, b) in zip(got, expected, strict=True):
        assert a == pytest.approx(b, abs=1e-4)


@pytest.mark.parametrize("fast", ["1", "0"])
@pytest.mark.parametrize("beam", [1, 3])
def test_old_translation_checkpoint_translates_as_before(fast, beam, monkeypatch):
    monkeypatch.setenv("NMT_FAST", fast)
    translator, _ = load_translator(
        DATA / "legacy_seq2seq.pt", device=CPU, precision="fp32"
    )
    lines = [de for de, _ in PAIRS] + ["ein hund fährt ein buch ."]
    cfg = BeamConfig(beam_size=beam, nbest=beam, batch_size=4)
    hyps = translator.translate(lines, cfg)
    for hs, expected in zip(hyps, EXPECTED[f"beam{beam}"], strict=True):
        same([[translator.detokenize(h), h.score] for h in hs], expected)


def test_old_lm_checkpoint_generates_as_before():
    generator, _ = load_generator(DATA / "legacy_lm.pt", device=CPU, precision="fp32")
    got = generator.beam("ROMEO:", 40, BeamConfig(beam_size=2, nbest=2))
    same([[c.text, c.score] for c in got], EXPECTED["lm_beam2"])
