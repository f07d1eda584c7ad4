"""Text continuation with a CharLM through the shared search (sampling or beam).

Used by the generate CLI and the REPL; the LM counterpart of `translator.py`.
"""

from __future__ import annotations

import dataclasses
import secrets
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
# the sampling settings' defaults (temperature: generation's own, not SampleConfig's
# 1.0); a beam search takes none of them
SAMPLING = {
    "temperature": 0.8,
    "top_k": SampleConfig.top_k,
    "top_p": SampleConfig.top_p,
}


def generation_config(
    *,
    max_chars: int,
    beam: int = 0,
    num_samples: int = 1,
    seed: int | None = None,
    temperature: float | None = None,
    top_k: int | None = None,
    top_p: float | None = None,
    name: Callable[[str], str] = str,
) -> BeamConfig | SampleConfig:
    """The search of a generation: beam search of width `beam` (its n-best size
    `num_samples`), or sampling (`beam` 0) seeded by `seed` (None: a random one,
    then in the returned config). Sampling settings left None take SAMPLING's
    defaults; giving one with a beam is a ValueError, as is any value out of
    range. `name` spells a setting in messages (a CLI: its flag)."""
    given = {"temperature": temperature, "top_k": top_k, "top_p": top_p}
    if beam < 0:
        raise ValueError(f"{name('beam')} must be >= 0 (0 = sample), got {beam}")
    if beam > 0 and (chosen := [name(k) for k, v in given.items() if v is not None]):
        raise ValueError(
            f"{', '.join(chosen)} set(s) sampling, which {name('beam')} does not use"
        )
    given = {k: SAMPLING[k] if v is None else v for k, v in given.items()}
    if max_chars < 0 or given["top_k"] < 0:
        raise ValueError(f"{name('max_chars')} and {name('top_k')} must be >= 0")
    if beam > 0:
        if not 1 <= num_samples <= beam:
            raise ValueError(
                f"{name('num_samples')} {num_samples} must be between 1 and "
                f"{name('beam')} {beam} in beam search"
            )
        return BeamConfig(beam_size=beam, nbest=num_samples)
    seed = secrets.randbelow(2**31) if seed is None else seed
    return SampleConfig(max_len=max_chars, num_samples=num_samples, seed=seed, **given)


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

    def generate(
        self, prompt: str, cfg: BeamConfig | SampleConfig, max_chars: int
    ) -> list[Continuation]:
        """`prompt`'s continuations of up to `max_chars` characters through the
        search `cfg` (`generation_config`): sampled, or beam-searched best first."""
        if isinstance(cfg, BeamConfig):
            return self.beam(prompt, max_chars, cfg)
        return self.sample(prompt, dataclasses.replace(cfg, max_len=max_chars))
