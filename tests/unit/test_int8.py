"""Int8 output layer for decoding: close to float, follows weight updates, only
where asked (translation decoding on a CPU)."""

from __future__ import annotations

import pytest
import torch

from nmt.models.int8 import Int8Linear
from nmt.models.seq2seq import Seq2Seq
from nmt.runtime import autocast, int8_available, resolve_precision
from nmt.search import beam_search
from tests.conftest import peaked_search_case, tiny_model_config

CPU = torch.device("cpu")
pytestmark = pytest.mark.skipif(not int8_available(CPU), reason="no quantized engine")


def test_int8_linear_is_close_to_float() -> None:
    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 300)
    x = torch.randn(20, 64).tanh()  # readout features: tanh in (-1, 1)
    with torch.no_grad():
        expected = linear(x)
    got = Int8Linear(linear.weight, linear.bias)(x)
    assert got.dtype == torch.float32 and got.shape == (20, 300)
    # int8 weights per row and 7-bit activations: error ~1 % of the logit range
    assert (got - expected).abs().max() < 0.02 * expected.abs().max()
    assert Int8Linear(linear.weight, None)(x).shape == (20, 300)


def make() -> Seq2Seq:
    torch.manual_seed(0)
    return Seq2Seq(tiny_model_config(), src_vocab=30, tgt_vocab=40).eval()


def test_step_uses_int8_only_when_asked_and_follows_updates() -> None:
    """Output layer, fused W_hh/query and readout: close to float, rebuilt after
    an in-place update, never with gradients."""
    model = make()
    src = torch.randint(4, 30, (3, 6))
    lengths = torch.tensor([6, 4, 2])
    tokens = torch.tensor([1, 5, 7])

    def log_probs() -> torch.Tensor:
        state = model.init_state((src, lengths), 1)
        return model.step(tokens, state)[0].float().log_softmax(-1)

    with torch.no_grad():
        exact = log_probs()
        model.use_int8(True)
        quantized = log_probs()
        assert isinstance(model.decoder._cached[1].hh_query_fast, Int8Linear)
        assert isinstance(model._fast[1], Int8Linear)
        assert not torch.equal(quantized, exact)
        torch.testing.assert_close(quantized, exact, atol=0.05, rtol=0)
        torch.testing.assert_close(quantized.exp().sum(-1), torch.ones(3))
        model.output.bias.add_(1.0)  # in place, as an optimizer: rebuilt
        model.output.bias[5] += 3.0
        moved = log_probs()
        assert moved[:, 5].gt(quantized[:, 5] + 2.0).all()
    with torch.enable_grad():  # never in training: gradients need the float layer
        model.train()
        assert log_probs().requires_grad


def test_int8_beam_search_matches_float_on_a_trained_like_model() -> None:
    """Small weight noise from int8 leaves the search's choices of a model with
    clear preferences unchanged."""
    model, inputs, lengths, cfg = peaked_search_case()
    exact = beam_search(model, inputs, lengths, cfg)
    model.use_int8(True)
    quantized = beam_search(model, inputs, lengths, cfg)
    assert [h[0].tokens for h in quantized] == [h[0].tokens for h in exact]


def test_int8_precision_is_for_translation_on_cpu() -> None:
    assert resolve_precision("int8", CPU, int8=True) == "int8"
    with pytest.raises(ValueError, match="translation only"):
        resolve_precision("int8", CPU)
    with pytest.raises(ValueError, match="needs a CPU"):
        resolve_precision("int8", torch.device("meta"), int8=True)
    with autocast(CPU, "int8"):  # the rest of the model as "auto" runs it
        assert torch.is_autocast_enabled("cpu") == (
            resolve_precision("auto", CPU) == "bf16"
        )
