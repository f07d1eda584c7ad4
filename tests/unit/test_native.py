"""The fused native log-softmax + top-k (nmt/native/topk.c) against PyTorch."""

from __future__ import annotations

import logging
import math
import os

import pytest
import torch
import torch.nn.functional as F

from nmt import native
from nmt.search import BeamConfig, beam_search, scoring

torch.set_num_threads(1)


@pytest.fixture
def built() -> None:
    """Skips only without a compiler: a kernel that fails to build must fail here."""
    if native._compiler() is None:
        pytest.skip("no C compiler here: the native kernel cannot be built")
    if os.environ.get("NMT_NATIVE") == "0":
        pytest.skip("NMT_NATIVE=0 switches the native kernel off")
    assert native.library() is not None, (
        "the kernels did not build or load (see the log)"
    )


def reference(x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    return F.log_softmax(x.float(), dim=1).topk(k, dim=1)


def assert_matches(x: torch.Tensor, k: int) -> None:
    """Same values (to float32 rounding of the log-sum-exp) and, away from exact
    ties, the same columns; tied columns come in column order."""
    values, columns = native.top_log_probs(x, k)
    expected = reference(x, k)
    torch.testing.assert_close(values, expected.values, atol=1e-5, rtol=1e-6)
    chosen = x.float().gather(1, columns)
    torch.testing.assert_close(chosen, x.float().gather(1, expected.indices))
    for r in range(x.size(0)):
        for i in range(k - 1):
            a, b = chosen[r, i], chosen[r, i + 1]
            assert a > b or (a == b and columns[r, i] < columns[r, i + 1])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize(
    "rows, vocab, k",
    [(37, 3963, 12), (5, 3963, 4), (3, 64, 12), (4, 31, 31), (7, 40, 30), (2, 1, 1)],
)
def test_equals_log_softmax_topk(built, dtype, rows, vocab, k):
    torch.manual_seed(rows * vocab + k)
    x = torch.randn(rows, vocab) * 4
    x[:, torch.randint(0, vocab, (min(vocab, 9),))] += 8  # a few strong candidates
    assert_matches(x.to(dtype), k)


def test_masked_tied_and_strided_rows(built):
    torch.manual_seed(0)
    wide = torch.randn(6, 200) * 3
    x = wide[:, 10:150]  # rows 200 apart, unit column stride
    x[0, 5:60] = float("-inf")  # masked tokens
    x[1] = 0.25  # all tied: the first k columns
    x[2, ::7] = 9.0  # tied best entries in many blocks
    x[3] = torch.linspace(-300, 0, 140)  # exp underflows below -87
    x[4, :139] = float("-inf")  # one finite entry left
    assert_matches(x, 12)
    values, columns = native.top_log_probs(x, 12)
    assert columns[1].tolist() == list(range(12))
    assert values[4, 0] == 0 and columns[4, 0] == 139


def test_ties_at_the_block_bound(built):
    """More than k blocks share the k-th largest block maximum: the top k still
    come out, ties in column order."""
    x = torch.randn(3, 4096) * 0.1
    for b in range(20):
        x[0, 32 * b + b % 32] = 5.0  # 20 blocks tie at their maximum
    x[1, [40, 100, 200, 300, 400, 500, 600]] = 6.0  # 7 clear winners in 7 blocks
    for b in (30, 31, 50, 90, 120):
        x[1, 32 * b + 3] = 5.0  # then 5 blocks tie at the bound, the first twice
    x[1, 32 * 30 + 9] = 5.0
    assert_matches(x, 8)
    columns = native.top_log_probs(x, 8)[1]
    assert columns[0].tolist() == [32 * b + b % 32 for b in range(8)]
    assert columns[1].tolist() == [40, 100, 200, 300, 400, 500, 600, 32 * 30 + 3]


def test_rows_of_minus_inf_stay_minus_inf(built):
    """A stepper's dead end (every token masked) is -inf, not NaN, on both paths."""
    x = torch.randn(3, 100)
    x[1] = float("-inf")
    values, columns = native.top_log_probs(x, 4)
    assert values[1].tolist() == [float("-inf")] * 4 and columns[1].tolist() == [
        0,
        1,
        2,
        3,
    ]
    torch.testing.assert_close(values[[0, 2]], reference(x, 4).values[[0, 2]])
    plain = scoring.log_softmax(x)
    assert torch.isneginf(plain[1]).all() and not plain.isnan().any()


class DeadEnd:
    """Log-probs where token 3 leads nowhere: every token after it is -inf."""

    pad_id, bos_id, eos_id = 0, 1, 2

    def init_state(self, inputs, width):
        return [()] * (len(inputs) * width)

    def step(self, tokens, state):
        new = [h + (t,) for h, t in zip(state, tokens.tolist())]
        rows = []
        for h in new:  # probabilities of PAD, BOS, EOS, 3, 4
            if len(h) == 1:
                rows.append([0.0, 0.0, 0.1, 0.5, 0.4])
            elif h[1] == 3:
                rows.append([0.0] * 5)
            else:
                rows.append([0.0, 0.0, 0.6, 0.25, 0.15])
        return torch.tensor(rows).log(), new

    def reorder(self, state, index):
        return [state[i] for i in index.tolist()]

    def attention(self, state):
        return None


@pytest.mark.parametrize("kernel", [True, False])
def test_search_survives_a_dead_end(monkeypatch, kernel):
    if not kernel:
        monkeypatch.setattr(native, "library", lambda: None)
    cfg = BeamConfig(beam_size=2, nbest=2, len_penalty=0.0, max_len_a=0.0, max_len_b=4)
    hyps = beam_search(DeadEnd(), [0], torch.tensor([0]), cfg)[0]
    assert [h.tokens for h in hyps] == [(4,), (4, 3)]
    assert hyps[0].log_prob == pytest.approx(math.log(0.4 * 0.6), abs=1e-5)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_rows_with_nan_or_inf_fall_back_to_pytorch(built, bad):
    x = torch.randn(4, 100)
    x[2, 17] = bad
    assert native.top_log_probs(x, 5) is None
    values, columns = scoring.top_log_probs(x, 5)
    expected = reference(x, 5)
    torch.testing.assert_close(values, expected.values, equal_nan=True)
    assert torch.equal(columns[[0, 1, 3]], expected.indices[[0, 1, 3]])


def test_inputs_it_does_not_take(built):
    x = torch.randn(3, 50)
    assert native.top_log_probs(x.double(), 3) is None
    assert native.top_log_probs(x[0], 3) is None
    assert native.top_log_probs(x.t().contiguous().t(), 3) is None  # column stride 3
    assert native.top_log_probs(x, 51) is None
    assert native.top_log_probs(x, 0) is None
    grad = x.clone().requires_grad_()
    assert native.top_log_probs(grad, 3) is None
    with torch.no_grad():
        assert native.top_log_probs(grad, 3) is not None
    empty = native.top_log_probs(x[:0], 3)
    assert empty is not None and empty[0].shape == (0, 3)


def test_switched_off_or_without_compiler(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("NMT_CACHE_DIR", str(tmp_path))
    native.library.cache_clear()
    try:
        monkeypatch.setenv("NMT_NATIVE", "0")
        assert native.library() is None
        native.library.cache_clear()
        monkeypatch.delenv("NMT_NATIVE")
        monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
        with caplog.at_level(logging.INFO, logger="nmt.native"):
            assert native.library() is None
        assert "no C compiler" in caplog.text
        x = torch.randn(3, 50)
        assert native.top_log_probs(x, 4) is None
        values, columns = scoring.top_log_probs(x, 4)  # PyTorch's path
        expected = reference(x, 4)
        assert torch.equal(values, expected.values)
        assert torch.equal(columns, expected.indices)
        native.library.cache_clear()
        monkeypatch.setenv("CC", "false")  # a "compiler" that always fails
        with caplog.at_level(logging.INFO, logger="nmt.native"):
            assert native.library() is None
        assert "not built" in caplog.text
        assert not list(tmp_path.iterdir())  # no half-written library left behind
    finally:
        native.library.cache_clear()


class Logits(torch.nn.Module):
    """A tiny random GRU returning unnormalised scores: no two histories tie."""

    pad_id, bos_id, eos_id = 0, 1, 2

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.embed = torch.nn.Embedding(50, 16)
        self.cell = torch.nn.GRUCell(16, 16)
        self.out = torch.nn.Linear(16, 50)

    def init_state(self, inputs: torch.Tensor, width: int) -> torch.Tensor:
        return inputs.repeat_interleave(width, dim=0)  # (N*W, 16)

    def step(self, tokens: torch.Tensor, state: torch.Tensor):
        hidden = self.cell(self.embed(tokens), state)  # (rows, 16)
        return 4 * self.out(hidden), hidden

    def reorder(self, state: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        return state.index_select(0, index)

    def attention(self, state: torch.Tensor) -> None:
        return None


@pytest.mark.parametrize("beam_size", [1, 4])
def test_search_same_with_and_without_kernel(built, monkeypatch, beam_size):
    stepper = Logits()
    inputs = torch.randn(6, 16)
    cfg = BeamConfig(beam_size=beam_size, nbest=beam_size, max_len_b=8)
    fused = beam_search(stepper, inputs, torch.full((6,), 4), cfg)
    monkeypatch.setattr(native, "library", lambda: None)
    plain = beam_search(stepper, inputs, torch.full((6,), 4), cfg)
    for a, b in zip(fused, plain):  # scores agree; hypotheses too, but at near-ties
        torch.testing.assert_close(
            torch.tensor([h.score for h in a]),
            torch.tensor([h.score for h in b]),
            atol=1e-4,
            rtol=0,
        )
        for i, (x, y) in enumerate(zip(a, b)):
            gaps = [abs(x.score - h.score) for h in a[:i] + a[i + 1 :]]
            if min(gaps, default=1.0) > 1e-4:
                assert x.tokens == y.tokens
