"""Checkpoint loaders: the right object for each kind, one-line errors for the wrong one."""

from __future__ import annotations

import os

import pytest
import torch

from nmt.inference.generator import TextGenerator
from nmt.inference.loading import load_any, load_generator, load_translator
from nmt.inference.translator import Translator
from nmt.training.checkpoint import CheckpointError
from nmt.utils.memory import KERNEL_CACHE

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
