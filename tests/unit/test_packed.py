"""oneDNN-packed linear maps in search steps: bitwise F.linear in bf16, close in
fp32, rebuilt after weight updates, never under gradients."""

from __future__ import annotations

import pytest
import torch

import nmt.models.packed as packed_module
from nmt.models.packed import PackedLinear, packable
from nmt.models.seq2seq import Seq2Seq
from nmt.runtime import bf16_supported
from nmt.search import beam_search
from tests.conftest import peaked_search_case, tiny_model_config

CPU = torch.device("cpu")
pytestmark = pytest.mark.skipif(
    not packable(CPU, torch.float32), reason="no oneDNN linear ops in this PyTorch"
)
needs_bf16 = pytest.mark.skipif(
    not (bf16_supported(CPU) and packable(CPU, torch.bfloat16)), reason="no bf16"
)


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


def test_packed_fp32_is_close_to_linear() -> None:
    torch.manual_seed(0)
    linear = torch.nn.Linear(48, 130)
    x = torch.randn(9, 48)
    with torch.no_grad():
        expected = linear(x)
        got = PackedLinear(linear.weight, None, torch.float32)(x)
    torch.testing.assert_close(got, expected - linear.bias, atol=1e-5, rtol=1e-5)


def test_packable_only_on_cpu_for_bf16_and_fp32() -> None:
    assert not packable(torch.device("meta"), torch.float32)
    assert not packable(CPU, torch.float16)


def make() -> Seq2Seq:
    torch.manual_seed(0)
    return Seq2Seq(tiny_model_config(), src_vocab=30, tgt_vocab=40).eval()


def step_log_probs(model: Seq2Seq) -> torch.Tensor:
    torch.manual_seed(1)
    src, lengths = torch.randint(4, 30, (3, 6)), torch.tensor([6, 4, 2])
    state = model.init_state((src, lengths), 1)
    return model.step(torch.tensor([1, 5, 7]), state)[0]


def unpacked(monkeypatch: pytest.MonkeyPatch, model: Seq2Seq) -> None:
    """No packing from now on (the copies already made are dropped)."""
    monkeypatch.setattr(packed_module, "packable", lambda device, dtype: False)
    model._fast = model.decoder._cached = model.decoder._values_map = None


@pytest.mark.parametrize(
    "dtype", [pytest.param(torch.bfloat16, marks=needs_bf16), torch.float32]
)
def test_search_step_uses_packed_maps_and_follows_updates(monkeypatch, dtype) -> None:
    model = make()
    autocast = torch.autocast(
        "cpu", dtype=torch.bfloat16, enabled=dtype != torch.float32
    )
    with torch.no_grad(), autocast:
        packed = step_log_probs(model)
        assert isinstance(model._fast[1], PackedLinear)
        assert isinstance(model.decoder._cached[1].hh_query_fast, PackedLinear)
        assert isinstance(model.decoder._cached[1].read_fast, PackedLinear)
        model.output.bias[5] += 3.0  # in place, as an optimizer: rebuilt
        model.decoder.readout.bias[0] += 1.0
        moved = step_log_probs(model)
        with monkeypatch.context() as patch:
            unpacked(patch, model)
            plain = step_log_probs(model)
    assert model._fast[1] is None
    assert moved[:, 5].gt(packed[:, 5] + 2.0).all()
    tolerance = 0.05 if dtype == torch.bfloat16 else 1e-5  # bf16: see above
    torch.testing.assert_close(moved, plain, atol=tolerance, rtol=0)
    with torch.enable_grad():  # never under gradients
        assert step_log_probs(model.train()).requires_grad


def test_beam_search_with_packed_maps_equals_plain_maps(monkeypatch) -> None:
    model, inputs, lengths, cfg = peaked_search_case()
    packed = beam_search(model, inputs, lengths, cfg)
    unpacked(monkeypatch, model)
    plain = beam_search(model, inputs, lengths, cfg)
    assert [[h.tokens for h in hyps] for hyps in packed] == [
        [h.tokens for h in hyps] for hyps in plain
    ]


@pytest.mark.parametrize(
    "dtype", [pytest.param(torch.bfloat16, marks=needs_bf16), torch.float32]
)
def test_values_map_is_packed_once_and_equals_linear(dtype) -> None:
    """A search's values (the context's columns of the decoder's input and readout
    weights applied to the memory) use one packed copy of the concatenated map,
    kept across batches and equal to F.linear of the concatenation."""
    model = make()
    decoder = model.decoder
    e, h, m = decoder.embed_size, decoder.rnn.hidden_size, decoder.context_size
    weight = torch.cat(
        [decoder.rnn.weight_ih_l0[:, e : e + m], decoder.readout.weight[:, h : h + m]]
    )
    memory = torch.randn(3, 7, m)
    context = torch.autocast(
        "cpu", dtype=torch.bfloat16, enabled=dtype != torch.float32
    )
    with torch.no_grad(), context:
        got = decoder.project_memory(memory)
        packed = decoder._values_map[1]
        again = decoder.project_memory(memory[:2])
        expected = torch.nn.functional.linear(memory, weight)
    assert isinstance(packed, PackedLinear) and decoder._values_map[1] is packed
    assert got.dtype == expected.dtype == dtype
    tol = (
        dict(atol=0, rtol=2**-7)
        if dtype == torch.bfloat16
        else dict(atol=1e-5, rtol=1e-5)
    )
    torch.testing.assert_close(got, expected, **tol)
    torch.testing.assert_close(again, got[:2], **tol)
