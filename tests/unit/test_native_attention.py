"""The fused native additive attention (nmt/native/attention.c) against PyTorch."""

from __future__ import annotations

import pytest
import torch

from nmt import native
from nmt.models.attention import _masked_softmax, build_attention
from nmt.search import beam_search
from tests.conftest import peaked_search_case

torch.set_num_threads(1)


@pytest.fixture
def built(monkeypatch) -> list[int]:
    """Skips only without a compiler (a kernel that fails to build must fail here);
    yields a list that counts the kernel's successful calls."""
    monkeypatch.delenv("NMT_NATIVE", raising=False)
    native.library.cache_clear()
    if native._compiler() is None:
        pytest.skip("no C compiler here: the native kernels cannot be built")
    assert native.library() is not None, "the kernels did not build (see the log)"
    calls = []
    kernel = native.additive_mix

    def counted(*args):
        out = kernel(*args)
        calls.append(out is not None)
        return out

    monkeypatch.setattr(native, "additive_mix", counted)
    yield calls
    native.library.cache_clear()


def case(sentences, width, src, size, gates, *, q_scale=2.0, seed=0):
    """(attention, q (N, W, A), keys, prepared, mask, values (N, S, G) float32)."""
    torch.manual_seed(seed)
    attn = build_attention("bahdanau", query_size=8, memory_size=8, attn_size=size)
    q = torch.randn(sentences, width, size) * q_scale
    keys = torch.randn(sentences, src, size) * 2.0
    lengths = torch.randint(1, src + 1, (sentences,))
    lengths[0] = src
    mask = torch.arange(src)[None, :] < lengths[:, None]
    values = torch.randn(sentences, src, gates)
    return attn, q, keys, attn.prepare(keys), mask, values


def pytorch_mix(attn, q, keys, prepared, mask, values):
    """PyTorch's float32 path: `prepared_weights`, then weights @ values."""
    weights = attn.prepared_weights(q, keys, prepared, mask)
    return weights, torch.bmm(weights, values.float())


def v_of(attn) -> torch.Tensor:
    return attn.v.weight[0].detach()


@pytest.mark.parametrize("values_dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize(
    "sentences, width, src, size, gates",
    [
        (3, 5, 7, 64, 96),  # whole 32-column blocks, one 4-row chunk and 1 row
        (2, 1, 1, 17, 5),  # greedy, one position, remainder columns only
        (4, 3, 33, 48, 70),  # 3-row chunk, 32 + 32 + 6 columns
        (1, 9, 12, 512, 2048),  # the Multi30k model's sizes, a wide beam
        (2, 2, 5, 1, 33),
        (2, 3, 4, 8, 0),  # no values
    ],
)
def test_equals_pytorch(built, values_dtype, sentences, width, src, size, gates):
    attn, q, keys, prepared, mask, values = case(sentences, width, src, size, gates)
    values = values.to(values_dtype)
    with torch.no_grad():
        got = attn.prepared_mix(q, keys, prepared, mask, values)
        expected = pytorch_mix(attn, q, keys, prepared, mask, values)
    assert built == [True]  # the kernel ran
    assert got[0].dtype == got[1].dtype == torch.float32
    assert got[0].shape == (sentences, width, src)
    assert got[1].shape == (sentences, width, gates)
    torch.testing.assert_close(got[0], expected[0], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(got[1], expected[1], atol=1e-5, rtol=1e-5)
    assert (got[0][~mask[:, None].expand_as(got[0])] == 0).all()


@pytest.mark.parametrize("values_dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize(
    "sentences, width, src, size, gates",
    [(3, 5, 7, 64, 96), (2, 1, 3, 17, 21), (2, 7, 5, 8, 70), (1, 5, 12, 512, 2048)],
)
def test_offsets_are_added_as_pytorch_adds_them(
    built, values_dtype, sentences, width, src, size, gates
):
    """mixed + offsets[index] in the kernel's pass: bitwise the kernel's mix plus
    the gathered rows, and PyTorch's path gives the same to rounding."""
    attn, q, keys, prepared, mask, values = case(sentences, width, src, size, gates)
    values = values.to(values_dtype)
    offsets = torch.randn(11, gates)
    index = torch.randint(0, 11, (sentences * width,))
    with torch.no_grad():
        got = attn.prepared_mix(q, keys, prepared, mask, values, offsets, index)
        alone = native.additive_mix(q, prepared, v_of(attn), mask, values)
        plain = pytorch_mix(attn, q, keys, prepared, mask, values)
    assert built == [True, True]  # with offsets and without
    rows = offsets[index].view(sentences, width, gates)
    assert torch.equal(got[0], alone[0])
    assert torch.equal(got[1], alone[1] + rows)
    torch.testing.assert_close(got[1], plain[1] + rows, atol=1e-5, rtol=1e-5)


def test_offsets_pytorch_path_and_what_the_kernel_refuses(built):
    attn, q, keys, prepared, mask, values = case(2, 3, 4, 8, 8)
    v, offsets = v_of(attn), torch.randn(5, 8)
    index = torch.tensor([0, 4, 1, 1, 2, 3])
    with torch.no_grad():
        fused = native.additive_mix(q, prepared, v, mask, values, offsets, index)
        for bad in ([0, 5, 1, 1, 2, 3], [0, -1, 1, 1, 2, 3]):  # out of range
            out = native.additive_mix(
                q, prepared, v, mask, values, offsets, torch.tensor(bad)
            )
            assert out is None
        assert (
            native.additive_mix(q, prepared, v, mask, values, offsets, index[:5])
            is None
        )
        assert (
            native.additive_mix(q, prepared, v, mask, values, offsets.double(), index)
            is None
        )
        assert (
            native.additive_mix(q, prepared, v, mask, values, offsets[:, :7], index)
            is None
        )
        assert (
            native.additive_mix(q, prepared, v, mask, values, offsets, index.int())
            is None
        )
        with pytest.raises(ValueError, match="together"):
            native.additive_mix(q, prepared, v, mask, values, offsets)
        # the base class's path (no kernel): the same sum
        from nmt.models.attention import Attention

        base = Attention.prepared_mix(
            attn, q, keys, prepared, mask, values, offsets, index
        )
    torch.testing.assert_close(base[1], fused[1], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(base[0], fused[0], atol=1e-6, rtol=1e-5)


def test_bfloat16_strided_queries_and_zero_v(built):
    """q as the search passes it (a bf16 slice of a wider matrix), and v entries
    that are +-0, tiny or negative (c = 1 / 2v is +-inf or huge: those terms vanish)."""
    attn, q, keys, prepared, mask, values = case(4, 5, 9, 24, 40)
    with torch.no_grad():
        attn.v.weight[0, :4] = torch.tensor([0.0, -0.0, 1e-30, -0.7])
        wide = torch.randn(20, 50).bfloat16()
        wide[:, 10:34] = q.reshape(20, 24).bfloat16()
        strided = wide[:, 10:34].reshape(4, 5, 24)
        got = native.additive_mix(strided, prepared, v_of(attn), mask, values)
        expected = pytorch_mix(attn, strided.float(), keys, prepared, mask, values)
    assert got is not None and torch.isfinite(got[1]).all()
    torch.testing.assert_close(got[0], expected[0], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(got[1], expected[1], atol=1e-5, rtol=1e-5)


def test_expanded_and_non_contiguous_inputs(built):
    attn, q, keys, prepared, mask, values = case(3, 4, 6, 20, 36)
    q = q[:1, :1].expand(3, 4, 20)  # one query for every row (stride 0)
    prepared = prepared.transpose(0, 1).contiguous().transpose(0, 1)
    values = values[:, :, ::2]  # every other column
    with torch.no_grad():
        got = native.additive_mix(q, prepared, v_of(attn), mask, values)
        expected = pytorch_mix(attn, q, keys, prepared, mask, values)
    torch.testing.assert_close(got[0], expected[0], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(got[1], expected[1], atol=1e-5, rtol=1e-5)


def test_large_queries_fall_back_to_the_sigmoid_form(built):
    attn, q, keys, prepared, mask, values = case(3, 2, 6, 16, 8, q_scale=40.0)
    assert q.abs().max() > 80
    with torch.no_grad():
        assert native.additive_mix(q, prepared, v_of(attn), mask, values) is None
        q_nan = q.clamp(-1, 1)
        q_nan[1, 0, 3] = float("nan")
        assert native.additive_mix(q_nan, prepared, v_of(attn), mask, values) is None
        got = attn.prepared_mix(q, keys, prepared, mask, values)
        weights = _masked_softmax(attn._score(q, keys), mask)  # the sigmoid form
    torch.testing.assert_close(got[0], weights, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(got[1], torch.bmm(weights, values), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("where", ["keys", "v", "v inf"])
def test_non_finite_scores_fall_back_and_stay_nan(built, where):
    """NaN in the keys or v (a diverged model) must not be hidden by the softmax:
    the kernel declines and PyTorch's NaN reaches the caller."""
    attn, q, keys, prepared, mask, values = case(2, 3, 5, 8, 8)
    with torch.no_grad():
        if where == "keys":
            prepared[0, 1, 3] = float("nan")
        else:
            attn.v.weight[0, 2] = float("nan" if where == "v" else "inf")
        assert native.additive_mix(q, prepared, v_of(attn), mask, values) is None
        got = attn.prepared_mix(q, keys, prepared, mask, values)
        expected = pytorch_mix(attn, q, keys, prepared, mask, values)
    assert got[0][0].isnan().all()
    torch.testing.assert_close(got[0], expected[0], equal_nan=True)


def test_inputs_it_does_not_take(built):
    attn, q, keys, prepared, mask, values = case(2, 3, 4, 8, 8)
    v = v_of(attn)
    assert native.additive_mix(q, prepared, v, mask, values) is not None
    assert native.additive_mix(q.double(), prepared, v, mask, values) is None
    assert native.additive_mix(q, prepared[:, :3], v, mask, values) is None  # S
    assert native.additive_mix(q, prepared, v[:4], mask, values) is None  # A
    assert native.additive_mix(q, prepared, v.bfloat16(), mask, values) is None
    assert native.additive_mix(q, prepared, v, mask.long(), values) is None
    assert native.additive_mix(q[0], prepared, v, mask, values) is None
    grad = q.clone().requires_grad_()
    assert native.additive_mix(grad, prepared, v, mask, values) is None
    with torch.no_grad():
        assert native.additive_mix(grad, prepared, v, mask, values) is not None
    empty = native.additive_mix(q[:, :0], prepared, v, mask, values)
    assert empty is not None and empty[1].shape == (2, 0, 8)
    no_source = native.additive_mix(q, prepared[:, :0], v, mask[:, :0], values[:, :0])
    assert no_source is not None and no_source[0].shape == (2, 3, 0)


def test_all_masked_row_is_nan_as_with_torch(built):
    attn, q, keys, prepared, mask, values = case(2, 2, 4, 8, 8)
    mask[1] = False
    with torch.no_grad():
        got = attn.prepared_mix(q, keys, prepared, mask, values)[0]
        expected = pytorch_mix(attn, q, keys, prepared, mask, values)[0]
    assert built == [True]
    assert got[1].isnan().all() and expected[1].isnan().all()
    torch.testing.assert_close(got[0], expected[0], atol=1e-6, rtol=1e-5)


def test_beam_search_same_with_and_without_kernel(built, monkeypatch):
    """A whole search on a trained-like model decodes the same either way."""
    model, inputs, lengths, cfg = peaked_search_case()
    with torch.no_grad():
        fused = beam_search(model, inputs, lengths, cfg)
        assert built and all(built)  # every step ran the kernel
        monkeypatch.setattr(native, "additive_mix", lambda *args: None)
        plain = beam_search(model, inputs, lengths, cfg)
    for a, b in zip(fused, plain):
        assert [h.tokens for h in a] == [h.tokens for h in b]
        for x, y in zip(a, b):
            assert x.log_prob == pytest.approx(y.log_prob, abs=1e-5)
