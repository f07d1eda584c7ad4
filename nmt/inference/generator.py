"""Text continuation with a CharLM through the shared search (sampling or beam).

Used by the generate CLI and the REPL; the LM counterpart of `translator.py`.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import SupportsFloat

import torch
from torch import Tensor

from nmt.data.chars import CharTokenizer
from nmt.data.tokenizer import UNK_ID
from nmt.models.lm import CharLM
from nmt.search import BeamConfig, SampleConfig, beam_search, sample
from nmt.utils.runtime import autocast

# what an empty prompt means: the start of a line (CharLM needs one character)
START = "\n"


@dataclass(frozen=True)
class Continuation:
    """One generated continuation; `score` is its total log-prob (beam search only)."""

    text: str  # the generated characters, without the prompt
    score: float | None = None


class TextGenerator:
    """A CharLM with its character vocabulary, device and precision."""

    def __init__(
        self,
        model: CharLM,
        tokenizer: CharTokenizer,
        *,
        device: torch.device,
        precision: str = "fp32",
    ) -> None:
        self.model = model.to(device)
        self.tokenizer = tokenizer
        self.device, self.precision = device, precision

    def encode_prompt(self, prompt: str) -> list[int]:
        """Ids of `prompt` (START if empty); unknown chars -> UNK, with a warning."""
        ids = self.tokenizer.encode(prompt or START)
        if prompt and UNK_ID in ids:
            unknown = sorted({c for c, i in zip(prompt, ids) if i == UNK_ID})
            print(
                f"warning: characters unknown to the model read as <unk>: {unknown}",
                file=sys.stderr,
            )
        return ids

    def _inputs(self, prompt: str) -> tuple[torch.Tensor, torch.Tensor]:
        ids = self.encode_prompt(prompt)
        tokens = torch.tensor([ids], device=self.device)  # (1, P)
        return tokens, torch.tensor([len(ids)], device=self.device)  # (1,)

    def sample(
        self,
        prompt: str,
        cfg: SampleConfig,
        generator: torch.Generator | None = None,
        *,
        deadline: SupportsFloat | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> list[Continuation]:
        """cfg.num_samples continuations of up to cfg.max_len characters each,
        shorter when the `deadline` (a time.monotonic() time) stops them.
        `on_text` gets the first continuation's characters as they are
        generated (they add up to its text), for a terminal to show them."""

        def first_row(rows: Tensor, tokens: Tensor, attention: Tensor | None) -> None:
            if on_text is not None and rows.numel() and rows[0] == 0:
                on_text(self.tokenizer.decode([int(tokens[0])]))

        with autocast(self.device, self.precision):
            rows = sample(
                self.model,
                self._inputs(prompt),
                cfg,
                generator=generator,
                deadline=deadline,
                on_step=None if on_text is None else first_row,
            )
        return [Continuation(self.tokenizer.decode(row)) for row in rows]

    def beam(
        self,
        prompt: str,
        max_len: int,
        cfg: BeamConfig,
        *,
        deadline: SupportsFloat | None = None,
    ) -> list[Continuation]:
        """cfg.nbest beam-search continuations of up to `max_len` characters.

        cfg.max_len_a/max_len_b are replaced by a fixed `max_len`; best first.
        With max_len <= 0 the one continuation is empty (log-prob 0). The
        `deadline` (a time.monotonic() time) stops the search with what it has.
        """
        if max_len <= 0:
            return [Continuation("", 0.0)]
        cfg = dataclasses.replace(cfg, max_len_a=0.0, max_len_b=max_len, max_len=0)
        lengths = torch.zeros(1, dtype=torch.long, device=self.device)  # (1,)
        inputs = self._inputs(prompt)
        with autocast(self.device, self.precision):
            hyps = beam_search(self.model, inputs, lengths, cfg, deadline=deadline)[0]
        return [
            Continuation(self.tokenizer.decode(list(h.tokens)), h.log_prob)
            for h in hyps
        ]
