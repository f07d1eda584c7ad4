"""The search protocol: what a model (or a faster copy of it, `nmt.fast`) offers
the searches, and the helpers both searches use. Shapes: N sentences, B beam
width, V vocabulary, S source length; rows are flat, row n*B + b.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any, Protocol

import torch
from torch import Tensor


class Stepper(Protocol):
    """One-step decoder shared by the seq2seq model and the LM; search never sees models."""

    pad_id: int
    bos_id: int
    eos_id: int

    def init_state(self, inputs: Any, width: int) -> Any:
        """Encode `inputs` and tile them: row n*width + b is sentence n, beam b.

        The beam search asks for width 1 and widens the state with `reorder`.
        """

    def step(self, tokens: Tensor, state: Any) -> tuple[Tensor, Any]:
        """Feed tokens (rows,); return scores (rows, V) and the next state.

        The scores are logits or log-probs: the searches normalise them (a
        log-softmax), so a model need not, and the search can fuse it with top-k.
        """

    def reorder(self, state: Any, index: Tensor) -> Any:
        """Keep rows `index` (rows',) of the state, in that order.

        `index` lists the rows of each surviving sentence together, the same number
        per sentence; that number may differ from the state's (1 -> B after the
        beam search's first step).
        """

    def attention(self, state: Any) -> Tensor | None:
        """Attention weights (rows, S) of the last step, or None."""


class Deadline:
    """A `time.monotonic()` time that `stop()` makes past at once. The searches
    read `float(deadline)` before each step, so a stop (the REPL's Ctrl-C) ends
    them at their next step with what they have, as a time limit does."""

    def __init__(self, at: float) -> None:
        self.at = at
        self.stopped = False

    def stop(self) -> None:
        self.at, self.stopped = -math.inf, True

    def __float__(self) -> float:
        return self.at


@contextlib.contextmanager
def inference(*steppers: Any) -> Iterator[None]:
    """No gradients, and each nn.Module stepper in eval mode; restores their modes
    after. A stepper wrapping others (an ensemble's `members`) stands for them."""
    modules = []
    for stepper in steppers:
        for inner in getattr(stepper, "members", [stepper]):
            training = getattr(inner, "training", None)
            if isinstance(training, bool) and hasattr(inner, "eval"):
                modules.append((inner, training))
    for module, _ in modules:
        module.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for module, training in modules:
            module.train(training)


def first_tensor(state: Any) -> Tensor | None:
    """The first tensor in a state of nested tuples (NamedTuples), lists and dicts."""
    if isinstance(state, Tensor):
        return state
    if not isinstance(state, (dict, list, tuple)):
        return None
    items = state.values() if isinstance(state, dict) else state
    return next((t for t in map(first_tensor, items) if t is not None), None)


def special_tokens(stepper: Stepper) -> list[int]:
    """PAD and BOS ids (unless they double as EOS): never worth generating."""
    return sorted({stepper.pad_id, stepper.bos_id} - {stepper.eos_id})
