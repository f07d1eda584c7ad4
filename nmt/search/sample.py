"""Ancestral sampling (temperature, top-k, nucleus) over the beam search's `Stepper`.

For the LM REPL and generation; deterministic search lives in `beam.py`.
Shapes: N inputs, R = N * num_samples rows, A rows still sampling, V vocab.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, SupportsFloat

import torch
from torch import Tensor

from nmt.search.scoring import (
    NEG_INF,
    forbid_tokens,
    keep_top_k,
    keep_top_p,
    log_softmax,
    prefix_table,
)
from nmt.search.stepper import Stepper, first_tensor, inference, special_tokens

# what `sample` reports after each step: the rows (K,) that got a token, their
# tokens (K,) and the stepper's attention for them (K, S) or None
OnStep = Callable[[Tensor, Tensor, Tensor | None], None]


@dataclass
class SampleConfig:
    """Sampling settings; temperature 0 is greedy (argmax) decoding."""

    temperature: float = 1.0  # divides log-probs before sampling; 0 = argmax
    top_k: int = 0  # sample among the k most likely tokens only; 0 = off
    top_p: float = 1.0  # nucleus: fewest best tokens with mass >= top_p; 1 = off
    max_len: int = 500  # most tokens generated per row after its prefix (EOS excluded)
    num_samples: int = 1  # rows per input: rows = N * num_samples
    seed: int = 0  # seeds a fresh torch.Generator when none is passed

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError for settings sampling cannot honour."""
        if not (math.isfinite(self.temperature) and self.temperature >= 0):
            raise ValueError(
                f"temperature must be a finite number >= 0, got {self.temperature}"
            )
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {self.num_samples}")


def sample(
    stepper: Stepper,
    inputs: Any,
    cfg: SampleConfig,
    prefix: Sequence[Sequence[int]] | None = None,
    generator: torch.Generator | None = None,
    *,
    deadline: SupportsFloat | None = None,
    on_step: OnStep | None = None,
) -> list[list[int]]:
    """Draw one token sequence per row, all rows advancing in one `step` call.

    Each row feeds BOS, then its forced prefix, then samples until EOS or until it
    has generated cfg.max_len tokens. PAD and BOS are never sampled. Temperature 0
    (argmax) gives the same tokens as `beam_search` with beam_size 1, len_penalty 0.

    Args:
        stepper: the model, seen only through the `Stepper` protocol; its state must
            be batch-first (rows on dim 0 of its first tensor), as the house style says.
        inputs: passed unchanged to `stepper.init_state(inputs, cfg.num_samples)`.
        cfg: sampling settings.
        prefix: optional forced tokens, one list per input (length N), shared by
            that input's num_samples rows.
        generator: random source; default torch.Generator seeded with cfg.seed.
        deadline: a `time.monotonic()` time (or what `float()` reads as one, such
            as a `stepper.Deadline`); checked before each step, at which the rows
            stop with what they have (overrunning it by at most a step).
        on_step: called after each step with the rows that got a token, in row
            order, forced prefix tokens included, EOS not: (rows (K,), tokens (K,),
            attention (K, S) from `stepper.attention`, or None). For text shown
            while it is generated and for a sample's attention.

    Returns:
        R = N * num_samples lists (row n*num_samples + s is sample s of input n) of
        the tokens generated after the prefix, without BOS, prefix or EOS.
    """
    cfg.validate()
    with inference(stepper):
        state = stepper.init_state(inputs, cfg.num_samples)
        leaf = first_tensor(state)
        if leaf is None:
            raise ValueError("sample needs a state holding a batch-first tensor")
        rows = leaf.size(0)
        forced = _forced_rows(prefix, rows, cfg.num_samples).to(leaf.device)  # (R, P)
        if generator is None:
            generator = torch.Generator(device=leaf.device).manual_seed(cfg.seed)
        if cfg.max_len <= 0:
            return [[] for _ in range(rows)]
        return _run(stepper, state, forced, cfg, generator, deadline, on_step)


def _run(
    stepper: Stepper,
    state: Any,
    forced: Tensor,
    cfg: SampleConfig,
    generator: torch.Generator,
    deadline: SupportsFloat | None,
    on_step: OnStep | None,
) -> list[list[int]]:
    """The sampling loop; finished rows leave the batch through `stepper.reorder`."""
    rows, eos = forced.size(0), stepper.eos_id
    active = torch.arange(rows, device=forced.device)  # (A,) original row ids
    last = torch.full((rows,), stepper.bos_id, dtype=torch.long, device=forced.device)
    counts = torch.zeros_like(active)  # (A,) tokens sampled so far
    out: list[list[int]] = [[] for _ in range(rows)]
    for step in range(forced.size(1) + cfg.max_len):
        if deadline is not None and time.monotonic() >= float(deadline):
            break
        scores, state = stepper.step(last, state)  # (A, V) logits or log-probs
        log_probs = forbid_tokens(log_softmax(scores), special_tokens(stepper))
        if step < forced.size(1):
            now = forced[active, step]  # (A,) forced token or -1
        else:
            now = torch.full_like(active, -1)  # (A,)
        tokens = _next_tokens(log_probs, now, cfg, generator, eos)  # (A,)
        emitted = (now < 0) & (tokens != eos)  # (A,)
        for row, token in zip(
            active[emitted].tolist(), tokens[emitted].tolist(), strict=True
        ):
            out[row].append(token)
        counts = counts + emitted.long()
        if on_step is not None:
            _report(stepper, state, active, tokens, tokens != eos, on_step)
        keep = ((tokens != eos) & (counts < cfg.max_len)).nonzero().squeeze(1)  # (A',)
        if keep.numel() == 0:
            break
        state = stepper.reorder(state, keep)
        active, last, counts = active[keep], tokens[keep], counts[keep]
    return out


def _report(
    stepper: Stepper,
    state: Any,
    active: Tensor,
    tokens: Tensor,
    added: Tensor,
    on_step: OnStep,
) -> None:
    """`on_step` with the `active` rows (A,) whose token (A,) was `added` (A,)."""
    attention = stepper.attention(state)  # (A, S) or None
    on_step(
        active[added],  # (K,)
        tokens[added],  # (K,)
        None if attention is None else attention[added],  # (K, S)
    )


def _next_tokens(
    log_probs: Tensor,
    forced: Tensor,
    cfg: SampleConfig,
    generator: torch.Generator,
    eos: int,
) -> Tensor:
    """Forced token where forced (A,) >= 0, else a draw; free rows all -inf get EOS."""
    drawn = _draw(log_probs, cfg, generator)  # (A,)
    dead = ~(log_probs > NEG_INF).any(dim=1)  # (A,) nothing can follow
    drawn = drawn.masked_fill(dead, eos)
    return torch.where(forced >= 0, forced, drawn)


def _forced_rows(
    prefix: Sequence[Sequence[int]] | None, rows: int, width: int
) -> Tensor:
    """Forced tokens per row (R, P), -1 padded; input n's prefix goes to its width rows."""
    if prefix is not None and len(prefix) * width != rows:
        raise ValueError(
            f"prefix needs one token list per input ({rows // width}), got {len(prefix)}"
        )
    table = prefix_table(prefix, rows // width)  # (N, P)
    return table.repeat_interleave(width, dim=0)  # (R, P)


def _draw(log_probs: Tensor, cfg: SampleConfig, generator: torch.Generator) -> Tensor:
    """Sample one token per row (A,) from (A, V) log-probs; rows all -inf give 0."""
    if cfg.temperature == 0:
        return log_probs.argmax(dim=1)
    # each row's best at 0 before dividing: a tiny temperature then sends the
    # others to -inf (argmax-like), never every entry (which reads as a dead row);
    # the temperature is kept within float32 (beyond, 0 / 0 and -inf / inf are NaN)
    top = log_probs.amax(dim=1, keepdim=True)  # (A, 1)
    shifted = log_probs - top.masked_fill(~torch.isfinite(top), 0.0)
    temperature = min(max(cfg.temperature, 1e-30), 1e30)
    logits = keep_top_p(keep_top_k(shifted / temperature, cfg.top_k), cfg.top_p)
    dead = ~(logits > NEG_INF).any(dim=1, keepdim=True)  # (A, 1)
    probs = logits.masked_fill(dead, 0.0).softmax(dim=1)  # (A, V), uniform if dead
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)  # (A,)
