"""What the server decodes with: a translation or an LM engine around the loaded
model, turning a batch of inputs into JSON-ready results, and describing itself
for /info. Runs in the batcher's worker thread; knows nothing of HTTP.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import torch

from nmt.config import TrainConfig
from nmt.inference.generator import SAMPLING, TextGenerator, generation_config
from nmt.inference.translator import Translator
from nmt.search import BeamConfig, Hypothesis, SampleConfig
from nmt.serving.inputs import GenerateRequest, TranslateKey
from nmt.serving.limits import Limits

DIGITS = 4  # attention weights and scores are rounded to this many decimals


def _number(value: float) -> float | None:
    """A JSON-safe float (JSON has no inf or NaN)."""
    return round(value, DIGITS) if math.isfinite(value) else None


def _model_info(model: torch.nn.Module, cfg: TrainConfig, path: str) -> dict[str, Any]:
    m = cfg.model
    return {
        "checkpoint": Path(path).name,
        "parameters": sum(p.numel() for p in model.parameters()),
        "model": {
            "cell": m.cell,
            "attention": m.attention,
            "layers": m.num_layers,
            "hidden_size": m.hidden_size,
            "embed_size": m.embed_size,
        },
    }


class TranslationEngine:
    """Decodes batches of sentences that share one `TranslateKey`."""

    kind = "translation"

    def __init__(
        self,
        translator: Translator,
        cfg: TrainConfig,
        *,
        path: str,
        defaults: BeamConfig,
    ) -> None:
        """defaults: the server's search settings (beam, len_penalty, lengths)."""
        self.translator, self.cfg, self.path = translator, cfg, path
        self.defaults = defaults

    def run(self, key: TranslateKey, texts: list[str]) -> list[dict[str, Any]]:
        """One result per text: best translation, score, log-prob; n-best and the
        best hypothesis' attention when the key asks."""
        cfg = dataclasses.replace(  # the whole batch at once, in this thread
            self.defaults,
            beam_size=key.beam,
            nbest=key.nbest,
            len_penalty=key.len_penalty,
            batch_size=max(1, len(texts)),
            workers=1,
        )
        found = self.translator.translate(
            texts, cfg, offset=None, attention=key.attention
        )
        return [self._result(t, hyps, key) for t, hyps in zip(texts, found)]

    def _result(
        self, text: str, hyps: list[Hypothesis], key: TranslateKey
    ) -> dict[str, Any]:
        detokenize = self.translator.detokenize
        best = hyps[0]
        result: dict[str, Any] = {
            "translation": detokenize(best),
            "score": _number(best.score),
            "log_prob": _number(best.log_prob),
        }
        if key.nbest > 1:
            result["nbest"] = [
                {
                    "translation": detokenize(h),
                    "score": _number(h.score),
                    "log_prob": _number(h.log_prob),
                }
                for h in hyps[: key.nbest]
            ]
        if key.attention:
            result["attention"] = self._attention(text, best)
        return result

    def _attention(self, text: str, best: Hypothesis) -> dict[str, Any]:
        """Source and target pieces and the (T, S) weights of `best`."""
        t = self.translator
        src, tgt = t.labels(t.encode(text, warn=False), best.tokens)
        if best.attention is None:  # a model without attention, or an empty line
            return {"src_tokens": src, "tgt_tokens": tgt, "weights": None}
        weights = best.attention.float().tolist()  # (T, S)
        return {
            "src_tokens": src,
            "tgt_tokens": tgt,
            "weights": [[round(w, DIGITS) for w in row] for row in weights],
        }

    def warm_up(self) -> None:
        """Decode one sentence, so the first request does not pay for set-up."""
        self.run(TranslateKey(self.defaults.beam_size, 1, 1.0, True), ["a"])

    def info(self, limits: Limits) -> dict[str, Any]:
        t, d = self.translator, self.defaults
        return {
            "kind": self.kind,
            "languages": {"src": self.cfg.data.src_lang, "tgt": self.cfg.data.tgt_lang},
            **_model_info(t.model, self.cfg, self.path),
            "vocabulary": {"src": t.src_tok.vocab_size, "tgt": t.tgt_tok.vocab_size},
            "device": str(t.device),
            "precision": t.precision,
            "search": {
                "beam": min(d.beam_size, limits.max_beam),
                "nbest": 1,
                "len_penalty": d.len_penalty,
                "max_len_a": d.max_len_a,
                "max_len_b": d.max_len_b,
                "max_len": d.max_len or t.max_tgt_len,
                "max_src_len": d.max_src_len or t.max_src_len,
            },
        }


class GenerationEngine:
    """Decodes /generate requests (one at a time: prompts are not batched)."""

    kind = "lm"

    def __init__(self, generator: TextGenerator, cfg: TrainConfig, *, path: str):
        self.generator, self.cfg, self.path = generator, cfg, path

    def run(self, key: Any, requests: list[GenerateRequest]) -> list[dict[str, Any]]:
        return [self._one(request) for request in requests]

    def _one(self, request: GenerateRequest) -> dict[str, Any]:
        search = request.search
        found = self.generator.generate(request.prompt, search, request.max_chars)
        results = [
            {"text": c.text, "score": None if c.score is None else _number(c.score)}
            for c in found
        ]
        seed = search.seed if isinstance(search, SampleConfig) else None
        return {"results": results, "seed": seed}

    def warm_up(self) -> None:
        self._one(GenerateRequest("a", 2, generation_config(max_chars=2, seed=0)))

    def info(self, limits: Limits) -> dict[str, Any]:
        g = self.generator
        return {
            "kind": self.kind,
            "languages": None,
            **_model_info(g.model, self.cfg, self.path),
            "vocabulary": {"chars": g.tokenizer.vocab_size},
            "device": str(g.device),
            "precision": g.precision,
            "search": {
                **SAMPLING,
                "max_chars": min(SampleConfig.max_len, limits.max_gen_chars),
                "beam": 0,
                "num_samples": 1,
            },
        }
