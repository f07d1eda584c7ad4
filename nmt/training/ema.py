"""An exponential moving average of a model's weights (`train.ema`).

After every optimizer step each averaged tensor moves toward the trained one:
    avg <- d * avg + (1 - d) * w,   d = min(ema, (1 + t) / (10 + t))
where t counts the updates, so the first steps are not dominated by the initial
weights (the warm-up of TensorFlow's ExponentialMovingAverage). Validation,
best.pt, step_N.pt and the test use the average; training continues from the raw
weights, and last.pt holds both so that resume is exact.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn


class WeightAverage:
    """fp32 shadow copies of a model's floating-point state (parameters and buffers)."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay  # in (0, 1): LoopConfig checks train.ema
        self.updates = 0
        self.shadow = {
            name: tensor.detach().float().clone()
            for name, tensor in model.state_dict().items()
            if tensor.is_floating_point()
        }

    def update(self, model: nn.Module) -> None:
        """Move the average toward `model`'s current weights."""
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        self.updates += 1
        current = model.state_dict()
        with torch.no_grad():
            for name, avg in self.shadow.items():
                avg.lerp_(current[name].detach().float(), 1.0 - decay)

    def weights(self, model: nn.Module) -> dict[str, Tensor]:
        """`model`'s state dict with the averaged tensors in place of the trained."""
        return {
            name: self.shadow[name].to(t.dtype) if name in self.shadow else t
            for name, t in model.state_dict().items()
        }

    @contextlib.contextmanager
    def swapped_in(self, model: nn.Module) -> Iterator[None]:
        """Context: `model` holds the averaged weights; the trained ones come back
        on exit (also on an exception)."""
        trained = {k: t.detach().clone() for k, t in model.state_dict().items()}
        model.load_state_dict(self.weights(model))
        try:
            yield
        finally:
            model.load_state_dict(trained)

    def state_dict(self) -> dict[str, Any]:
        return {"updates": self.updates, "shadow": self.shadow}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a `state_dict()`; names or shapes that differ are a ValueError."""
        shapes = {k: tuple(t.shape) for k, t in state["shadow"].items()}
        if shapes != {k: tuple(t.shape) for k, t in self.shadow.items()}:
            raise ValueError("the weight average does not fit this model")
        self.updates = int(state["updates"])
        for name, tensor in state["shadow"].items():
            self.shadow[name].copy_(tensor)
