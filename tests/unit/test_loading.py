"""Checkpoint loaders: the right object for each kind, ensembles of several, one-line
errors for the wrong kind or mismatched ensemble members."""

from __future__ import annotations

import os

import pytest
import torch

from nmt.inference.generator import TextGenerator
from nmt.inference.loading import ensemble, load_any, load_generator, load_translator
from nmt.inference.translator import Translator
from nmt.search import BeamConfig
from nmt.training.checkpoint import CheckpointError
from nmt.utils.memory import KERNEL_CACHE
from tests.conftest import PAIRS

CPU = torch.device("cpu")


def test_load_any_picks_by_kind(tiny_checkpoint, tiny_lm_checkpoint):
    translator, cfg = load_any(tiny_checkpoint, device=CPU, precision="fp32")
    assert isinstance(translator, Translator) and cfg.task == "translation"
    generator, cfg = load_any(tiny_lm_checkpoint, device=CPU, precision="fp32")
    assert isinstance(generator, TextGenerator) and cfg.task == "lm"
    assert not generator.model.training and generator.tokenizer.vocab_size > 20


def test_wrong_kind_is_a_one_line_checkpoint_error(tiny_checkpoint, tiny_lm_checkpoint):
    with pytest.raises(CheckpointError) as lm_as_mt:
        load_translator(tiny_lm_checkpoint, device=CPU)
    assert "character language model" in str(lm_as_mt.value)
    with pytest.raises(CheckpointError) as mt_as_lm:
        load_generator(tiny_checkpoint, device=CPU)
    assert "is a translation model" in str(mt_as_lm.value)
    for error in (lm_as_mt.value, mt_as_lm.value):
        assert "\n" not in str(error)


@pytest.mark.parametrize("load", [load_any, load_translator])
def test_loading_for_decoding_caps_onednn_kernel_caches(
    tiny_checkpoint, load, monkeypatch
):
    for name in KERNEL_CACHE:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LRU_CACHE_CAPACITY", "7")  # the user's own value stays
    load(tiny_checkpoint, device=CPU, precision="fp32")
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "16"
    assert os.environ["LRU_CACHE_CAPACITY"] == "7"


SOURCES = [de for de, _ in PAIRS]


@pytest.mark.parametrize("beam_size", [1, 3])
def test_an_ensemble_of_one_checkpoint_is_that_checkpoint(tiny_checkpoint, beam_size):
    """Byte-identical hypotheses and scores through the Translator, whether its
    one model comes as a path, a list of one, or a list of one model."""
    cfg = BeamConfig(beam_size=beam_size, nbest=beam_size)
    alone, _ = load_translator(tiny_checkpoint, device=CPU, precision="fp32")
    listed, _ = load_translator([tiny_checkpoint], device=CPU, precision="fp32")
    wrapped = Translator(
        [alone.model], alone.src_tok, alone.tgt_tok, device=CPU, precision="fp32"
    )
    ref = alone.translate(SOURCES, cfg)
    for translator in (listed, wrapped):
        got = translator.translate(SOURCES, cfg)
        assert [[(h.tokens, h.log_prob, h.score) for h in hs] for hs in got] == [
            [(h.tokens, h.log_prob, h.score) for h in hs] for hs in ref
        ]


def test_a_checkpoint_ensembled_with_itself_translates_as_it_does(tiny_checkpoint):
    cfg = BeamConfig(beam_size=3)
    alone, _ = load_translator(tiny_checkpoint, device=CPU, precision="fp32")
    twice, _ = load_translator([tiny_checkpoint] * 2, device=CPU, precision="fp32")
    assert len(twice.models) == 2
    assert twice.translate_best(SOURCES, cfg) == alone.translate_best(SOURCES, cfg)


def test_two_models_translate_as_an_ensemble(tiny_checkpoint, tiny_checkpoint_b):
    a, cfg_a = load_translator(tiny_checkpoint, device=CPU, precision="fp32")
    b, _ = load_translator(tiny_checkpoint_b, device=CPU, precision="fp32")
    both, cfg = load_translator(
        [tiny_checkpoint, tiny_checkpoint_b], device=CPU, precision="fp32"
    )
    assert cfg == cfg_a and [m.training for m in both.models] == [False, False]
    assert both.stepper().members[1].model is both.models[1]  # the fast path's
    found = both.translate(SOURCES, BeamConfig(beam_size=3, nbest=2))
    assert all(1 <= len(hs) <= 2 and hs[0].score <= 0 for hs in found)
    # the ensemble's first choice after BOS: the mean of the members' log-probs
    src = torch.tensor([a.encode(SOURCES[0])])
    lengths = torch.tensor([src.size(1)])
    firsts = []
    for translator in (a, b, both):
        stepper = translator.stepper()
        with torch.no_grad():
            state = stepper.init_state((src, lengths), 1)
            scores, _ = stepper.step(torch.tensor([a.tgt_tok.bos_id]), state)
        firsts.append(scores)
    mean = (firsts[0].log_softmax(-1) + firsts[1].log_softmax(-1)) / 2
    torch.testing.assert_close(firsts[2], mean)  # the search normalises it


def test_an_ensemble_over_other_vocabularies_is_one_line(
    tiny_checkpoint, tiny_checkpoint_other_vocab, tiny_lm_checkpoint
):
    with pytest.raises(CheckpointError) as other:
        load_translator([tiny_checkpoint, tiny_checkpoint_other_vocab], device=CPU)
    message = str(other.value)
    assert "different target vocabularies" in message and "\n" not in message
    assert str(tiny_checkpoint) in message
    assert str(tiny_checkpoint_other_vocab) in message
    with pytest.raises(CheckpointError, match="only translation models") as lm:
        load_any([tiny_checkpoint, tiny_lm_checkpoint], device=CPU)
    assert "\n" not in str(lm.value)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_translator([], device=CPU)


def test_an_ensemble_over_other_source_tokenizers_is_one_line(
    tiny_checkpoint, tiny_checkpoint_other_vocab
):
    a, cfg = load_translator(tiny_checkpoint, device=CPU, precision="fp32")
    other, _ = load_translator(tiny_checkpoint_other_vocab, device=CPU)
    same_target = Translator(
        a.model, other.src_tok, a.tgt_tok, device=CPU, precision="fp32"
    )
    with pytest.raises(CheckpointError, match="tokenize the source differently"):
        ensemble([("a.pt", a, cfg), ("b.pt", same_target, cfg)])
