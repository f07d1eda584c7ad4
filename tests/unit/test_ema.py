"""train.ema: the moving average of the weights (nmt.training.ema)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nmt.training.ema import WeightAverage
from nmt.training.progress import LoopConfig


def test_average_follows_the_warmed_up_decay():
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    start = model.weight.detach().clone()
    ema = WeightAverage(model, decay=0.9)
    expected = start.clone()
    for t in range(30):
        with torch.no_grad():
            model.weight.add_(torch.randn_like(model.weight))
        ema.update(model)
        decay = min(0.9, (1 + t) / (10 + t))
        expected = decay * expected + (1 - decay) * model.weight.detach()
    torch.testing.assert_close(ema.shadow["weight"], expected)
    assert not torch.equal(ema.shadow["weight"], model.weight.detach())


def test_swapped_in_restores_the_trained_weights_even_on_error():
    model = nn.Linear(3, 2)
    ema = WeightAverage(model, decay=0.5)
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model)
    trained = model.weight.detach().clone()
    with pytest.raises(RuntimeError), ema.swapped_in(model):
        torch.testing.assert_close(model.weight.detach(), ema.shadow["weight"])
        raise RuntimeError("validation failed")
    torch.testing.assert_close(model.weight.detach(), trained, atol=0, rtol=0)


def test_state_round_trip_and_misfit():
    model = nn.Linear(3, 2)
    ema = WeightAverage(model, decay=0.99)
    ema.update(model)
    other = WeightAverage(model, decay=0.99)
    other.load_state_dict(ema.state_dict())
    assert other.updates == 1
    with pytest.raises(ValueError, match="does not fit"):
        WeightAverage(nn.Linear(4, 2), 0.99).load_state_dict(ema.state_dict())


@pytest.mark.parametrize("decay", [-0.1, 1.0, 1.5])
def test_decay_out_of_range_is_refused(decay):
    with pytest.raises(ValueError, match="train.ema"):
        LoopConfig(ema=decay)
