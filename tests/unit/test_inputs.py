"""The fields of /translate and /generate requests, read against the limits."""

from __future__ import annotations

import pytest

from nmt.search import BeamConfig, SampleConfig
from nmt.serving.inputs import (
    TranslateKey,
    parse_generate,
    parse_translate,
)
from nmt.serving.limits import Limits, RequestError

LIMITS = Limits(max_texts=3, max_chars=20, max_beam=8, max_gen_chars=100)
DEFAULTS = BeamConfig(beam_size=5, len_penalty=0.6)


def refused(parse, body: dict) -> tuple[int, str]:
    with pytest.raises(RequestError) as error:
        parse(body)
    return error.value.status, error.value.message


def translate(body: dict):
    return parse_translate(body, LIMITS, DEFAULTS)


def generate(body: dict):
    return parse_generate(body, LIMITS)


def test_text_or_texts_with_the_servers_defaults():
    one = translate({"text": "ein hund"})
    assert one.texts == ["ein hund"] and one.key == TranslateKey(5, 1, 0.6, False)
    many = translate(
        {"texts": ["a", ""], "beam": 2, "nbest": 2, "len_penalty": 0, "attention": True}
    )
    assert many.texts == ["a", ""] and many.key == TranslateKey(2, 2, 0.0, True)
    assert translate({"texts": []}).texts == []


@pytest.mark.parametrize(
    "body, code, words",
    [
        ({}, 400, "either"),
        ({"text": "a", "texts": ["b"]}, 400, "either"),
        ({"texts": "a"}, 400, "list"),
        ({"texts": ["a", 3]}, 400, "texts[1]"),
        ({"texts": ["a"] * 4}, 422, "limit is 3"),
        ({"text": "x" * 21}, 422, "limit is 20"),
        ({"text": "a", "beam": 9}, 422, "beam"),
        ({"text": "a", "beam": 0}, 422, "beam"),
        ({"text": "a", "beam": 2, "nbest": 3}, 422, "nbest"),
        ({"text": "a", "len_penalty": 11}, 422, "len_penalty"),
        ({"text": "a", "attention": "yes"}, 400, "attention"),
        ({"text": "a", "src": "de"}, 400, "'src'"),
    ],
)
def test_translate_requests_out_of_bounds_are_refused(body, code, words):
    status, message = refused(translate, body)
    assert status == code and words in message


def test_generate_samples_by_default_with_a_random_seed():
    first, second = generate({"prompt": "RO"}), generate({"prompt": "RO"})
    assert isinstance(first.search, SampleConfig) and first.max_chars == 100
    assert first.search.temperature == 0.8 and first.search.max_len == 100
    assert first.search.seed != second.search.seed or first.search.seed == 0
    fixed = generate({"prompt": "", "seed": 7, "top_k": 5, "top_p": 0.9})
    assert (fixed.search.seed, fixed.search.top_k, fixed.search.top_p) == (7, 5, 0.9)


def test_generate_beam_search_takes_no_sampling_settings():
    beam = generate({"prompt": "a", "beam": 3, "num_samples": 2, "max_chars": 5})
    assert beam.max_chars == 5 and beam.search == BeamConfig(beam_size=3, nbest=2)
    assert refused(generate, {"prompt": "a", "beam": 2, "temperature": 1})[0] == 422
    assert refused(generate, {"prompt": "a", "beam": 2, "num_samples": 3})[0] == 422


@pytest.mark.parametrize(
    "body, code",
    [
        ({"prompt": 1}, 400),
        ({"prompt": "a", "max_chars": 101}, 422),
        ({"prompt": "a", "temperature": -1}, 422),
        ({"prompt": "a", "top_p": 0}, 422),
        ({"prompt": "a", "seed": -1}, 422),
        ({"prompt": "a", "seed": "1"}, 400),
        ({"prompt": "a", "num_samples": 9}, 422),
        ({"prompt": "a", "prompts": []}, 400),
    ],
)
def test_generate_requests_out_of_bounds_are_refused(body, code):
    assert refused(generate, body)[0] == code
