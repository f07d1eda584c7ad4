"""TextGenerator: prompt handling (empty, unknown characters), sampling and beam."""

from __future__ import annotations

import dataclasses

import torch

from nmt.data.chars import CharTokenizer
from nmt.data.tokenizer import UNK_ID
from nmt.inference.generator import START, Continuation, TextGenerator
from nmt.models.lm import CharLM
from nmt.search import BeamConfig, SampleConfig
from tests.conftest import TINY_TEXT, tiny_lm_config


def make() -> TextGenerator:
    tokenizer = CharTokenizer.build(TINY_TEXT)
    torch.manual_seed(0)
    model = CharLM(tiny_lm_config(), vocab_size=tokenizer.vocab_size).eval()
    return TextGenerator(model, tokenizer, device=torch.device("cpu"))


def test_empty_prompt_starts_a_line_and_unknown_characters_warn(capsys):
    generator = make()
    assert generator.encode_prompt("") == generator.tokenizer.encode(START)
    assert capsys.readouterr().err == ""
    ids = generator.encode_prompt("R€M")
    assert ids[1] == UNK_ID and ids[0] != UNK_ID
    assert "['€']" in capsys.readouterr().err


def test_sample_and_beam_give_continuations():
    generator = make()
    cfg = SampleConfig(max_len=25, num_samples=3, seed=1)
    found = generator.sample("ROMEO:", cfg)
    assert len(found) == 3 and all(len(c.text) <= 25 for c in found)
    assert all(c.score is None for c in found)
    again = generator.sample("ROMEO:", cfg)
    assert [c.text for c in again] == [c.text for c in found]
    best = generator.beam("ROMEO:", 12, BeamConfig(beam_size=4, nbest=2))
    assert len(best) == 2 and best[0].score >= best[1].score
    assert generator.beam("ROMEO:", 0, BeamConfig(beam_size=3, nbest=2)) == [
        Continuation("", 0.0)
    ]  # like sampling with max_len 0: nothing added
    assert generator.sample("ROMEO:", SampleConfig(max_len=0))[0].text == ""
    greedy = generator.beam("ROMEO:", 12, BeamConfig(beam_size=1, len_penalty=0.0))
    argmax = generator.sample("ROMEO:", SampleConfig(temperature=0.0, max_len=12))
    assert greedy[0].text == argmax[0].text


def test_beam_keeps_every_setting_but_the_length(monkeypatch):
    seen: list[tuple[BeamConfig, float | None]] = []

    def search(model, inputs, lengths, cfg, *, deadline=None):
        seen.append((cfg, deadline))
        return [[]]

    monkeypatch.setattr("nmt.inference.generator.beam_search", search)
    cfg = BeamConfig(
        beam_size=3,
        nbest=2,
        len_penalty=0.5,
        min_len=2,
        no_repeat_ngram=3,
        batch_size=7,
        workers=1,
        prefix="x",
        max_len=4,  # the LM's length is `max_len` alone
    )
    make().beam("ROMEO:", 9, cfg, deadline=12.5)
    expected = dataclasses.replace(cfg, max_len_a=0.0, max_len_b=9, max_len=0)
    assert seen == [(expected, 12.5)]


def test_on_text_streams_the_first_continuation_as_it_is_generated():
    generator, pieces = make(), []
    cfg = SampleConfig(max_len=40, num_samples=3, seed=2)
    found = generator.sample("ROMEO:", cfg, on_text=pieces.append)
    assert "".join(pieces) == found[0].text and len(pieces) == len(found[0].text)
    assert found == generator.sample("ROMEO:", cfg)  # the same without streaming
