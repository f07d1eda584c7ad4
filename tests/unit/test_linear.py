"""nmt.fast.linear: packed, int8 and plain frozen copies of a linear map."""

from __future__ import annotations

import pytest
import torch

from nmt import fast
from nmt.fast.linear import (
    Int8Linear,
    PackedLinear,
    PlainLinear,
    frozen_linear,
    packable,
)
from nmt.search import beam_search
from nmt.utils.runtime import (
    autocast,
    bf16_supported,
    int8_available,
    resolve_precision,
)
from tests.conftest import peaked_search_case

CPU = torch.device("cpu")
needs_packing = pytest.mark.skipif(
    not packable(CPU, torch.float32), reason="no oneDNN linear ops in this PyTorch"
)
needs_bf16 = pytest.mark.skipif(
    not (bf16_supported(CPU) and packable(CPU, torch.bfloat16)),
    reason="this CPU has no native bf16 (AVX512-BF16/AMX)",
)
needs_int8 = pytest.mark.skipif(not int8_available(CPU), reason="no quantized engine")


@needs_bf16
def test_packed_bf16_equals_linear_under_autocast() -> None:
    torch.manual_seed(0)
    linear = torch.nn.Linear(48, 130)
    for rows in (1, 5, 37):
        x = torch.randn(rows, 48)
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            expected = linear(x)
            got = PackedLinear(linear.weight, linear.bias, torch.bfloat16)(x)
        assert got.dtype == torch.bfloat16
        # bitwise where oneDNN runs both (this project's CPUs); one bf16 step else
        torch.testing.assert_close(got, expected, atol=0, rtol=2**-7)


@needs_packing
def test_packed_fp32_is_close_to_linear() -> None:
    torch.manual_seed(0)
    linear = torch.nn.Linear(48, 130)
    x = torch.randn(9, 48)
    with torch.no_grad():
        expected = linear(x)
        got = PackedLinear(linear.weight, None, torch.float32)(x)
    torch.testing.assert_close(got, expected - linear.bias, atol=1e-5, rtol=1e-5)


def test_frozen_linear_picks_a_copy_and_never_follows_the_layer() -> None:
    torch.manual_seed(0)
    linear = torch.nn.Linear(8, 5)
    x = torch.randn(3, 8)
    with torch.no_grad():
        copy = frozen_linear(linear.weight, linear.bias, torch.float32)
        plain = PlainLinear(linear.weight, linear.bias, torch.float32)
        expected = linear(x)
        linear.weight.mul_(2.0)
    assert isinstance(
        copy, PackedLinear if packable(CPU, torch.float32) else PlainLinear
    )
    torch.testing.assert_close(copy(x), expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(plain(x), expected, atol=1e-6, rtol=1e-6)
    assert not packable(torch.device("meta"), torch.float32)
    assert not packable(CPU, torch.float16)


@needs_int8
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


@needs_int8
def test_int8_beam_search_matches_float_on_a_trained_like_model() -> None:
    """Small weight noise from int8 leaves the search's choices of a model with
    clear preferences unchanged."""
    model, inputs, lengths, cfg = peaked_search_case()
    exact = beam_search(model, inputs, lengths, cfg)
    stepper = fast.stepper(model, dtype=torch.float32, int8=True)
    quantized = beam_search(stepper, inputs, lengths, cfg)
    assert [h[0].tokens for h in quantized] == [h[0].tokens for h in exact]


@needs_int8
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
