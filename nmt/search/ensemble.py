"""An ensemble of steppers behind the one `Stepper` protocol: the searches decode K
models at once without knowing it. Not for loading or checking the models (that is
`nmt.inference.loading`). Shapes: rows = N sentences x W beams, V vocabulary,
S source length, K members.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from nmt.search.scoring import log_softmax
from nmt.search.stepper import Stepper


class EnsembleStepper:
    """K steppers over one target vocabulary, averaging their log-probs per step.

    A step returns mean_k log p_k(y | ...) (V,) per row; the searches normalise what
    a step returns (a log-softmax), so hypotheses are scored by the normalised
    geometric mean of the members' distributions (Marian's and Nematus' ensemble,
    with equal weights; fairseq averages probabilities instead). The state is the
    tuple of the members' states; `attention` is the mean of the members' that
    have one. The members take the same inputs (one source tokenization) and must
    agree on PAD/BOS/EOS ids. An ensemble of one returns its member's scores
    unchanged, so it decodes exactly as that member alone.
    """

    def __init__(self, members: Sequence[Stepper]) -> None:
        if not members:
            raise ValueError("an ensemble needs at least one model")
        self.members = list(members)
        first = self.members[0]
        self.pad_id, self.bos_id, self.eos_id = first.pad_id, first.bos_id, first.eos_id
        for member in self.members[1:]:
            ids = (member.pad_id, member.bos_id, member.eos_id)
            if ids != (self.pad_id, self.bos_id, self.eos_id):
                raise ValueError(
                    f"ensemble members disagree on PAD/BOS/EOS ids: {ids} vs "
                    f"{(self.pad_id, self.bos_id, self.eos_id)}"
                )

    def init_state(self, inputs: Any, width: int) -> tuple[Any, ...]:
        """Each member's state for the same `inputs`, `width` rows per sentence."""
        return tuple(member.init_state(inputs, width) for member in self.members)

    def step(self, tokens: Tensor, state: tuple[Any, ...]) -> tuple[Tensor, tuple]:
        """tokens (rows,) -> the members' mean log-probs (rows, V) float32 and the
        new states (one member: its scores as they are, logits or log-probs)."""
        if len(self.members) == 1:
            scores, inner = self.members[0].step(tokens, state[0])
            return scores, (inner,)
        total: Tensor | None = None
        states = []
        for member, member_state in zip(self.members, state, strict=True):
            scores, member_state = member.step(tokens, member_state)  # (rows, V)
            log_probs = log_softmax(scores)  # (rows, V) float32
            total = log_probs if total is None else total + log_probs
            states.append(member_state)
        assert total is not None
        return total / len(self.members), tuple(states)

    def reorder(self, state: tuple[Any, ...], index: Tensor) -> tuple[Any, ...]:
        """Keep rows `index` (rows',) of every member's state."""
        return tuple(
            member.reorder(member_state, index)
            for member, member_state in zip(self.members, state, strict=True)
        )

    def attention(self, state: tuple[Any, ...]) -> Tensor | None:
        """Mean (rows, S) float32 of the members' attention of the last step (the
        members without attention left out); None when no member has one. One
        member: its attention as it is."""
        if len(self.members) == 1:
            return self.members[0].attention(state[0])
        found = [
            weights.float()
            for member, member_state in zip(self.members, state, strict=True)
            if (weights := member.attention(member_state)) is not None
        ]
        if not found:
            return None
        return torch.stack(found).mean(dim=0)  # (K', rows, S) -> (rows, S)
