"""Translator bounds: source and target caps from the model, lines read only as far
as the cap needs, and a line's translation the same alone as among garbage."""

from __future__ import annotations

import pytest
import torch

from nmt.data.tokenizer import EOS_ID
from nmt.inference.loading import load_translator
from nmt.inference.translator import Translator
from nmt.models.seq2seq import Seq2Seq
from nmt.search import BeamConfig
from tests.conftest import PAIRS, tiny_model_config

CPU = torch.device("cpu")


def make(tiny_spm, *, endless: bool = False, **limits: int) -> Translator:
    """A tiny seeded translator; `endless` never ends a hypothesis (EOS -inf)."""
    torch.manual_seed(0)
    vocab = tiny_spm.vocab_size
    model = Seq2Seq(tiny_model_config(), src_vocab=vocab, tgt_vocab=vocab).eval()
    if endless:
        with torch.no_grad():
            model.output.bias[EOS_ID] = -1e4
    return Translator(model, tiny_spm, tiny_spm, device=CPU, **limits)


def test_sources_are_cut_at_the_models_limit_or_the_configs(tiny_spm, capsys):
    translator = make(tiny_spm, max_src_len=3)
    line = "e i n m a n n"  # many tokens, few characters: cut after tokenizing
    tokens = tiny_spm.encode(line)
    assert len(tokens) > 5 and len(line) <= 3 * translator.chars_per_token
    assert translator.encode(line, 2) == tokens[:3]
    err = capsys.readouterr().err
    assert err == f"warning: line 3 has {len(tokens)} tokens; translating its first 3\n"
    assert translator.encode(line, max_src_len=5) == tokens[:5]
    translator.translate([PAIRS[0][0], line], BeamConfig(max_src_len=4), offset=10)
    err = capsys.readouterr().err
    assert "line 12 has" in err and "translating its first 4\n" in err
    assert translator.translate([line], BeamConfig(max_src_len=50))
    assert "translating" not in capsys.readouterr().err


def test_a_huge_line_is_read_only_as_far_as_the_cap_needs(
    tiny_spm, capsys, monkeypatch
):
    translator = make(tiny_spm, max_src_len=4)
    seen: list[int] = []
    encode = tiny_spm.encode
    monkeypatch.setattr(tiny_spm, "encode", lambda t: seen.append(len(t)) or encode(t))
    limit = 4 * translator.chars_per_token
    short = "x" * limit  # not longer than the limit: read whole
    translator.encode(short, 0)
    huge = "ein mann " * 100_000
    ids = translator.encode(huge, 1)
    assert seen == [limit, limit] and ids == encode(huge[:limit])[:4]
    err = capsys.readouterr().err
    assert f"line 2 has {len(huge)} characters; translating the first 4 tokens" in err


def test_targets_stop_at_the_models_limit_unless_the_config_says(tiny_spm):
    translator = make(tiny_spm, endless=True, max_tgt_len=6)
    src = PAIRS[0][0]  # int(1.5 * |src| + 10) > 6
    hyps = translator.translate([src], BeamConfig(beam_size=2))[0]
    assert len(hyps[0].tokens) == 6
    longer = BeamConfig(beam_size=2, max_len=9)
    assert len(translator.translate([src], longer)[0][0].tokens) == 9
    short = BeamConfig(beam_size=2, max_len_a=0.0, max_len_b=3)  # a, b still apply
    assert len(translator.translate([src], short)[0][0].tokens) == 3


def test_a_line_translates_the_same_among_garbage(tiny_spm):
    translator = make(tiny_spm)
    garbage = ["x" * 5_000, "ein " * 400, "", "😀" * 50, "\x00\x85\u2028", "a1!" * 90]
    known = [de for de, _ in PAIRS]
    cfg = BeamConfig(beam_size=3, batch_size=4, workers=1)
    alone = [translator.translate([line], cfg)[0][0].tokens for line in known]
    mixed = translator.translate(garbage[:3] + known + garbage[3:], cfg)
    assert len(mixed) == len(garbage) + len(known)
    found = [hyps[0].tokens for hyps in mixed[3 : 3 + len(known)]]
    assert found == alone


def test_attention_only_when_asked(tiny_spm):
    translator = make(tiny_spm)
    cfg = BeamConfig(beam_size=2)
    assert translator.translate([PAIRS[0][0]], cfg)[0][0].attention is None
    hyp = translator.translate([PAIRS[0][0]], cfg, attention=True)[0][0]
    assert hyp.attention is not None and hyp.attention.size(0) == len(hyp.tokens)


@pytest.mark.parametrize("max_len", [7, 40])
def test_a_checkpoint_sets_the_limits_from_its_training_data(
    tiny_checkpoint, max_len, monkeypatch
):
    from nmt.inference import loading

    payload = loading.load_checkpoint(tiny_checkpoint)
    payload["config"]["data"]["max_len"] = max_len
    monkeypatch.setattr(loading, "load_checkpoint", lambda path: payload)
    translator, cfg = load_translator(tiny_checkpoint, device=CPU, precision="fp32")
    assert cfg.data.max_len == max_len
    assert (translator.max_src_len, translator.max_tgt_len) == (max_len, max_len)
