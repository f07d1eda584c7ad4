"""The one optimizer step both trainers share, on a hand-made loss."""

from __future__ import annotations

import pytest
import torch

from nmt.training.distributed import Distributed
from nmt.training.loop import StepLoss, TrainingLoop
from nmt.training.progress import LoopConfig


class LinearLoop(TrainingLoop):
    """Just enough of a trainer for `optimizer_step`: a linear model on CPU."""

    def __init__(self, **loop: float) -> None:
        self.loop = LoopConfig(schedule="constant", **loop)
        self.device, self.precision = torch.device("cpu"), "fp32"
        self.dist = Distributed()
        torch.manual_seed(0)
        self.model = torch.nn.Linear(3, 1)
        self.setup_optimizer(None)


def _forward(model: torch.nn.Module, tokens: int, total: int):
    inputs = torch.arange(6.0).view(2, 3)
    return lambda: StepLoss(model(inputs).square().sum(), tokens, total)


def test_step_backpropagates_the_mean_over_the_batch_and_counts_it() -> None:
    trainer = LinearLoop(lr=0.1, clip_norm=0.0)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    reference = torch.nn.Linear(3, 1)
    reference.load_state_dict(trainer.model.state_dict())
    summed = _forward(reference, 4, 5)().loss
    (summed / 5).backward()

    loss = trainer.optimizer_step(_forward(trainer.model, 4, 5))

    assert loss == pytest.approx(float(summed.detach()) / 4)  # per token of this share
    for param, want in zip(trainer.model.parameters(), reference.parameters()):
        torch.testing.assert_close(param.grad, want.grad)  # d(loss)/total
    assert all(
        not torch.equal(p, b) for p, b in zip(trainer.model.parameters(), before)
    )
    p = trainer.progress
    assert (p.step, p.tokens, p.lr) == (1, 5, 0.1) and p.train_seconds > 0
    assert trainer.optimizer.param_groups[0]["lr"] == 0.1


def test_step_clips_the_gradient_norm() -> None:
    trainer = LinearLoop(lr=0.1, clip_norm=0.5)
    trainer.optimizer_step(_forward(trainer.model, 2, 2))
    norm = torch.linalg.vector_norm(
        torch.cat([p.grad.flatten() for p in trainer.model.parameters()])
    )
    assert float(norm) == pytest.approx(0.5, rel=1e-4)
