"""Corpus BLEU and chrF with sacreBLEU (signatures included), and perplexity.

Scores detokenized text against raw references; not for tokenizing or decoding.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from sacrebleu.metrics import BLEU, CHRF


@dataclass(frozen=True)
class CorpusScores:
    """Corpus-level scores of one hypothesis stream against one reference stream."""

    # 0-100; sacreBLEU defaults: cased, 13a tokenization, on detokenized text
    bleu: float
    # chrF2, 0-100
    chrf: float
    # e.g. "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0"
    bleu_signature: str
    # e.g. "nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:2.6.0"
    chrf_signature: str
    # e.g. "BLEU = 30.93 76.5/50.0/27.3/11.1 (BP = 0.943 ratio = 0.944 ...)"
    bleu_verbose: str


def corpus_scores(hyps: Sequence[str], refs: Sequence[str]) -> CorpusScores:
    """Corpus BLEU (`BLEU()`) and chrF (`CHRF()`) with default sacreBLEU settings.

    Args:
        hyps: one detokenized hypothesis per sentence.
        refs: the reference of each sentence, same order and count.

    Returns:
        Scores on the 0-100 scale with their sacreBLEU signatures.

    Raises:
        ValueError: different counts (sacreBLEU would silently score the overlap)
            or no sentences.
        TypeError: a single string instead of a sequence of lines.
    """
    if isinstance(hyps, str) or isinstance(refs, str):
        raise TypeError("corpus_scores takes sequences of lines, not a single string")
    if len(hyps) != len(refs):
        raise ValueError(
            f"corpus_scores got {len(hyps)} hypotheses for {len(refs)} references"
        )
    if not hyps:
        raise ValueError("corpus_scores got no sentences to score")
    hyps, ref_streams = list(hyps), [list(refs)]
    bleu, chrf = BLEU(), CHRF()
    bleu_score = bleu.corpus_score(hyps, ref_streams)
    chrf_score = chrf.corpus_score(hyps, ref_streams)
    return CorpusScores(
        bleu=float(bleu_score.score),
        chrf=float(chrf_score.score),
        bleu_signature=str(bleu.get_signature()),
        chrf_signature=str(chrf.get_signature()),
        bleu_verbose=str(bleu_score),
    )


def perplexity(loss_nats: float) -> float:
    """exp(mean token cross-entropy in nats); `inf` instead of an OverflowError.

    Args:
        loss_nats: mean negative log-likelihood per token (natural log).

    Returns:
        The perplexity; `inf` when it exceeds the float range, `nan` for `nan`.
    """
    try:
        return math.exp(float(loss_nats))
    except OverflowError:
        return math.inf
