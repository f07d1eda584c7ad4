"""sacreBLEU corpus wrappers and perplexity."""

from __future__ import annotations

import dataclasses
import math

import pytest

from nmt.inference.metrics import CorpusScores, corpus_scores, perplexity

REFS = [
    "A man in an orange hat starring at something.",
    "A group of people standing in front of an igloo.",
    "Two young , White males are outside near many bushes.",
]


def test_identical_text_scores_100() -> None:
    scores = corpus_scores(REFS, REFS)
    assert round(scores.bleu) == 100
    assert round(scores.chrf) == 100


def test_partial_match_is_between_0_and_100() -> None:
    hyps = [
        "A man in a red hat looks at something.",
        "People in front of an igloo.",
        "",
    ]
    scores = corpus_scores(hyps, REFS)
    assert 0 < scores.bleu < 100 and 0 < scores.chrf < 100


def test_case_matters() -> None:
    assert corpus_scores([r.lower() for r in REFS], REFS).bleu < 100


def test_signatures_and_verbose_string() -> None:
    scores = corpus_scores(REFS, REFS)
    assert "nrefs:1|case:mixed" in scores.bleu_signature
    assert "tok:13a" in scores.bleu_signature
    assert "nrefs:1|case:mixed" in scores.chrf_signature
    assert "nc:6|nw:0" in scores.chrf_signature
    assert scores.bleu_verbose.startswith("BLEU = 100.00 ")
    with pytest.raises(dataclasses.FrozenInstanceError):
        scores.bleu = 0.0  # type: ignore[misc]
    assert isinstance(scores, CorpusScores)


def test_count_mismatch_is_value_error() -> None:
    with pytest.raises(ValueError, match="998 hypotheses for 1000 references"):
        corpus_scores(["a"] * 998, ["a"] * 1000)


def test_empty_corpus_and_single_string() -> None:
    with pytest.raises(ValueError, match="no sentences"):
        corpus_scores([], [])
    with pytest.raises(TypeError, match="single string"):
        corpus_scores("a b c", "a b c")


def test_perplexity() -> None:
    assert perplexity(0.0) == 1.0
    assert perplexity(math.log(7.0)) == pytest.approx(7.0)
    assert perplexity(1e6) == math.inf
    assert math.isnan(perplexity(float("nan")))
