"""The fused native log-softmax + top-k (nmt/search/topk.c) against PyTorch."""

from __future__ import annotations

import logging

import pytest
import torch
import torch.nn.functional as F

from nmt.search import BeamConfig, beam_search, native, scoring

torch.set_num_threads(1)


@pytest.fixture
def built() -> None:
    if native.library() is None:
        pytest.skip("no C compiler here: the native kernel is not built")


def reference(x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    return F.log_softmax(x.float(), dim=1).topk(k, dim=1)


def assert_matches(x: torch.Tensor, k: int) -> None:
    """Same values (to float32 rounding of the log-sum-exp) and, away from exact
    ties, the same columns; tied columns come in column order."""
    values, columns = native.top_log_probs(x, k)
    expected = reference(x, k)
    torch.testing.assert_close(values, expected.values, atol=2e-6, rtol=0)
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
        with caplog.at_level(logging.INFO, logger="nmt.search.native"):
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
        with caplog.at_level(logging.INFO, logger="nmt.search.native"):
            assert native.library() is None
        assert "not built" in caplog.text
        assert not list(tmp_path.iterdir())  # no half-written library left behind
    finally:
        native.library.cache_clear()


class Logits(torch.nn.Module):
    """A stepper returning unnormalised scores that depend on the history."""

    pad_id, bos_id, eos_id = 0, 1, 2

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.table = torch.nn.Embedding(50, 50)
        self.table.weight.data[:, 2] -= 2.0  # EOS less likely early

    def init_state(self, inputs: torch.Tensor, width: int) -> torch.Tensor:
        return inputs.float().repeat_interleave(width, dim=0)  # (N*W, 1)

    def step(self, tokens: torch.Tensor, state: torch.Tensor):
        scores = 3 * self.table(tokens) + state  # (rows, V)
        return scores, state + 0.1 * tokens[:, None]

    def reorder(self, state: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        return state.index_select(0, index)

    def attention(self, state: torch.Tensor) -> None:
        return None


@pytest.mark.parametrize("beam_size", [1, 4])
def test_search_same_with_and_without_kernel(built, monkeypatch, beam_size):
    stepper = Logits()
    inputs = torch.arange(6).float()[:, None]
    cfg = BeamConfig(beam_size=beam_size, nbest=beam_size, max_len_b=8)
    fused = beam_search(stepper, inputs, torch.full((6,), 4), cfg)
    monkeypatch.setattr(native, "library", lambda: None)
    plain = beam_search(stepper, inputs, torch.full((6,), 4), cfg)
    for a, b in zip(fused, plain):
        assert [h.tokens for h in a] == [h.tokens for h in b]
        for x, y in zip(a, b):
            assert abs(x.log_prob - y.log_prob) < 1e-4
