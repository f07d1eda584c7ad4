"""The fields of a /translate and a /generate request, read from parsed JSON and
checked against the `Limits` (bad input is a `RequestError`, never a traceback).

Requests with equal `TranslateKey`s are decoded in one batch (`batching.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from nmt.inference.generator import generation_config
from nmt.search import BeamConfig, SampleConfig
from nmt.serving.limits import (
    Limits,
    RequestError,
    check_fields,
    get_bool,
    get_float,
    get_int,
    get_text,
)

MAX_LEN_PENALTY = 10.0  # GNMT alpha; useful values are about 0..2
MAX_SEED = 2**31 - 1
TRANSLATE_FIELDS = ("text", "texts", "beam", "nbest", "len_penalty", "attention")
GENERATE_FIELDS = (
    "prompt",
    "max_chars",
    "temperature",
    "top_k",
    "top_p",
    "seed",
    "beam",
    "num_samples",
)


class TranslateKey(NamedTuple):
    """The search settings of a /translate request: one batch decodes one key."""

    beam: int
    nbest: int
    len_penalty: float
    attention: bool


@dataclass(frozen=True)
class TranslateRequest:
    texts: list[str]
    key: TranslateKey


@dataclass(frozen=True)
class GenerateRequest:
    """A /generate request: its prompt, length and search (`generation_config`:
    sampling, or beam search whose n-best size is num_samples)."""

    prompt: str
    max_chars: int
    search: BeamConfig | SampleConfig


def parse_translate(
    body: dict[str, Any], limits: Limits, defaults: BeamConfig
) -> TranslateRequest:
    """`{"text": s}` or `{"texts": [s, ...]}` with optional beam, nbest,
    len_penalty (GNMT alpha) and attention; defaults from the server's search."""
    check_fields(body, TRANSLATE_FIELDS, "/translate")
    if ("text" in body) == ("texts" in body):
        raise RequestError(400, 'give either "text" (a string) or "texts" (a list)')
    if "text" in body:
        texts = [get_text(body, "text", limits, "text")]
    else:
        items = body["texts"]
        if not isinstance(items, list):
            raise RequestError(400, '"texts" must be a list of strings')
        if len(items) > limits.max_texts:
            raise RequestError(
                422,
                f"{len(items)} texts in one request; the limit is {limits.max_texts}",
            )
        texts = [
            get_text({"t": item}, "t", limits, f"texts[{i}]")
            for i, item in enumerate(items)
        ]
    default_beam = min(defaults.beam_size, limits.max_beam)
    beam = get_int(body, "beam", default_beam, 1, limits.max_beam)
    key = TranslateKey(
        beam=beam,
        nbest=get_int(body, "nbest", 1, 1, beam),
        len_penalty=get_float(
            body, "len_penalty", defaults.len_penalty, 0.0, MAX_LEN_PENALTY
        ),
        attention=get_bool(body, "attention"),
    )
    return TranslateRequest(texts=texts, key=key)


def parse_generate(body: dict[str, Any], limits: Limits) -> GenerateRequest:
    """`{"prompt": s}` with optional max_chars, beam (0 = sample), num_samples, and
    for sampling temperature, top_k, top_p and seed (default: random, returned);
    checked as `nmt.generate` checks its flags (`generation_config`)."""
    check_fields(body, GENERATE_FIELDS, "/generate")
    prompt = get_text(body, "prompt", limits, "prompt")
    default_len = min(SampleConfig.max_len, limits.max_gen_chars)
    max_chars = get_int(body, "max_chars", default_len, 0, limits.max_gen_chars)
    beam = get_int(body, "beam", 0, 0, limits.max_beam)
    high = min(beam, limits.max_samples) if beam else limits.max_samples
    num_samples = get_int(body, "num_samples", 1, 1, high)
    given = {  # None: not given (a beam search takes none of them)
        "temperature": (get_float, 0.0, 0.0, 100.0),
        "top_k": (get_int, 0, 0, 1_000_000),
        "top_p": (get_float, 1.0, 1e-6, 1.0),
        "seed": (get_int, 0, 0, MAX_SEED),
    }
    values = {
        name: read(body, name, default, low, high) if name in body else None
        for name, (read, default, low, high) in given.items()
    }
    try:
        search = generation_config(
            max_chars=max_chars, beam=beam, num_samples=num_samples, **values
        )
    except ValueError as error:
        raise RequestError(422, str(error)) from None
    return GenerateRequest(prompt, max_chars, search)
