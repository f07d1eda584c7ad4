"""scripts/bench_split.py's instrumentation: it times and counts a real decode,
changes no translation, and puts back everything it wraps."""

from __future__ import annotations

import functools
import importlib.util
import sys
from pathlib import Path

import torch
from torch import nn

from nmt.fast.linear import PackedLinear
from nmt.inference.translator import Translator
from nmt.models.seq2seq import Seq2Seq
from nmt.search import BeamConfig
from tests.conftest import PAIRS, tiny_model_config

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_split.py"


@functools.cache
def _load_script():
    spec = importlib.util.spec_from_file_location("bench_split", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up
    spec.loader.exec_module(module)
    return module


def test_decode_times_products_counts_rows_and_restores(tiny_spm):
    bench = _load_script()
    torch.manual_seed(0)
    vocab = tiny_spm.vocab_size
    model = Seq2Seq(tiny_model_config(), src_vocab=vocab, tgt_vocab=vocab).eval()
    translator = Translator(model, tiny_spm, tiny_spm, device=torch.device("cpu"))
    lines = [de for de, _ in PAIRS]
    search = BeamConfig(beam_size=3, batch_size=4, workers=1, max_len_b=6)
    originals = [getattr(owner, name) for owner, name in bench.PRODUCTS]
    expected = translator.translate_best(lines, search)

    run = bench.decode(translator, lines, search)

    assert run.sentences == len(lines)
    assert run.steps > 0
    # the first step of a batch has one row per sentence, later ones up to 3
    assert len(lines) <= run.rows <= 3 * len(lines) * (run.steps)
    assert 0.0 < run.products < run.seconds
    assert [getattr(owner, name) for owner, name in bench.PRODUCTS] == originals
    assert "step" not in vars(translator.stepper())  # the step counter is gone
    assert PackedLinear.__call__ is originals[0] and nn.Linear.forward is originals[2]
    assert translator.translate_best(lines, search) == expected


def test_timed_products_counts_nested_calls_once():
    bench = _load_script()
    clock = {"products": 0.0}
    layer = nn.Linear(8, 8)
    with bench.timed_products(clock):
        layer(torch.ones(2, 8))  # nn.Linear.forward calls F.linear: one timing
        once = clock["products"]
        assert once > 0.0
        nn.functional.linear(torch.ones(2, 8), layer.weight)
        assert clock["products"] > once
    after = clock["products"]
    layer(torch.ones(2, 8))  # unwrapped again
    assert clock["products"] == after
