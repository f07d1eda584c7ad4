"""Pure search scoring functions against hand-computed numbers."""

from __future__ import annotations

import math

import pytest
import torch

from nmt.search.scoring import (
    NEG_INF,
    ban_ngrams,
    forbid_candidates,
    forbid_tokens,
    force_tokens,
    keep_top_k,
    keep_top_p,
    length_penalty,
    prefix_table,
    top_k_rows,
)

torch.set_num_threads(1)
INF = float("inf")


@pytest.mark.parametrize(
    ("length", "alpha", "expected"),
    [
        (0, 0.0, 1.0),
        (10, 0.0, 1.0),
        (1, 1.0, 1.0),  # (5 + 1) / 6 = 1 for any alpha
        (1, 0.6, 1.0),
        (7, 1.0, 2.0),  # (5 + 7) / 6
        (7, 0.5, math.sqrt(2.0)),
        (13, 2.0, 9.0),  # ((5 + 13) / 6) ** 2
        (7, -1.0, 0.5),
        (0, 1.0, 5.0 / 6.0),
    ],
)
def test_length_penalty_hand_computed(length: int, alpha: float, expected: float):
    got = length_penalty(torch.tensor([length]), alpha)
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_length_penalty_keeps_shape_and_float_dtype():
    lengths = torch.tensor([[1.0, 7.0]], dtype=torch.float64)
    got = length_penalty(lengths, 1.0)
    assert got.dtype == torch.float64
    assert got.tolist() == [[1.0, 2.0]]


def test_forbid_tokens_sets_columns_without_touching_input():
    log_probs = torch.zeros(2, 4)
    got = forbid_tokens(log_probs, [0, 2])
    assert got.tolist() == [[-INF, 0.0, -INF, 0.0]] * 2
    assert log_probs.eq(0).all()
    assert forbid_tokens(log_probs, []) is log_probs


def test_forbid_candidates_masks_by_token_not_position():
    values = torch.tensor([[-1.0, -0.5, -2.0], [-0.25, -3.0, -2.0]])
    tokens = torch.tensor([[4, 0, 7], [2, 4, 0]])
    got = forbid_candidates(values, tokens, [0, 2])
    assert got.tolist() == [[-1.0, -INF, -2.0], [-INF, -3.0, -INF]]
    assert values[0, 1] == -0.5  # input untouched
    assert forbid_candidates(values, tokens, []) is values


def test_forbid_candidates_after_top_k_equals_forbid_then_top_k():
    torch.manual_seed(0)
    log_probs = torch.randn(6, 300).log_softmax(dim=1)
    log_probs[:, 5] = 1.0  # a banned token that would win every row
    banned, k = [5, 0, 9], 4
    expected = forbid_tokens(log_probs, banned).topk(k, dim=1).values
    values, tokens = top_k_rows(log_probs, k + len(banned))
    got = forbid_candidates(values, tokens, banned).topk(k, dim=1).values
    assert torch.equal(got, expected)


@pytest.mark.parametrize(
    ("history", "n", "banned"),
    [
        ([3, 4, 3], 2, {4}),  # bigram (3, 4) seen, last token 3
        ([3, 4, 3], 1, {3, 4}),  # unigram ban: every seen token
        ([3, 4, 3], 3, set()),  # (4, 3) never followed by anything
        ([3, 3, 3], 2, {3}),
        ([5, 3, 4, 5, 3], 3, {4}),  # (5, 3) -> 4
        ([3], 2, set()),  # history shorter than n
        ([3, 4], 0, set()),  # off
    ],
)
def test_ban_ngrams(history: list[int], n: int, banned: set[int]):
    log_probs = torch.zeros(1, 6)
    got = ban_ngrams(log_probs, torch.tensor([history]), n)
    assert {i for i in range(6) if got[0, i] == -INF} == banned


def test_ban_ngrams_rows_are_independent():
    history = torch.tensor([[3, 4, 3], [4, 3, 4]])
    got = ban_ngrams(torch.zeros(2, 5), history, 2)
    assert got[0].eq(-INF).nonzero().view(-1).tolist() == [4]
    assert got[1].eq(-INF).nonzero().view(-1).tolist() == [3]


def test_force_tokens_keeps_the_forced_score_only():
    log_probs = torch.log(torch.tensor([[0.1, 0.2, 0.7], [0.1, 0.2, 0.7]]))
    got = force_tokens(log_probs, torch.tensor([0, -1]))
    assert got[0, 0] == log_probs[0, 0]  # even though token 0 is the least likely
    assert got[0, 1:].eq(-INF).all()
    assert torch.equal(got[1], log_probs[1])


def test_keep_top_k():
    logits = torch.tensor([[0.125, 0.5, 0.25, 0.75]])
    assert keep_top_k(logits, 2).tolist() == [[-INF, 0.5, -INF, 0.75]]
    assert keep_top_k(logits, 0) is logits
    assert keep_top_k(logits, 4) is logits


@pytest.mark.parametrize(
    ("p", "kept"),
    [
        (0.4, [2]),  # the best token alone has 0.5 >= 0.4
        (0.6, [2, 0]),  # 0.5 + 0.3 = 0.8 is the first mass >= 0.6
        (0.75, [2, 0]),
        (0.85, [2, 0, 1]),
        (1.0, [0, 1, 2, 3]),
    ],
)
def test_keep_top_p(p: float, kept: list[int]):
    probs = torch.tensor([[0.3, 0.15, 0.5, 0.05]], dtype=torch.float64)
    got = keep_top_p(probs.log(), p)
    assert sorted(i for i in range(4) if got[0, i] > -INF) == sorted(kept)


def test_prefix_table_pads_with_minus_one():
    table = prefix_table([[5, 6], [], [7]], 3)
    assert table.tolist() == [[5, 6], [-1, -1], [7, -1]]
    assert prefix_table(None, 2).shape == (2, 0)
    with pytest.raises(ValueError, match="one token list per sentence"):
        prefix_table([[5]], 2)


@pytest.mark.parametrize("vocab", [8000, 8003, 4096, 100])
@pytest.mark.parametrize("k", [1, 10, 40])
def test_top_k_rows_equals_topk(vocab: int, k: int) -> None:
    gen = torch.Generator().manual_seed(vocab + k)
    scores = torch.randn(9, vocab, generator=gen)
    scores[3] = NEG_INF  # a row with nothing allowed
    scores[5, ::2] = NEG_INF  # half the tokens banned
    scores[6, -3:] = 50.0 + torch.arange(3.0)  # the best ones in the tail columns
    values, index = top_k_rows(scores, k)
    expected = scores.topk(k, dim=1)
    assert torch.equal(values, expected.values)
    assert torch.equal(scores.gather(1, index), values)  # indices point at the values
    finite = torch.isfinite(values)  # no ties among random finite values
    assert torch.equal(index[finite], expected.indices[finite])


@pytest.mark.parametrize("vocab", [100, 8000])
@pytest.mark.parametrize("k", [1, 5, 12])
def test_top_k_rows_ties_go_to_the_lower_column(vocab: int, k: int) -> None:
    gen = torch.Generator().manual_seed(vocab * k)
    scores = torch.randint(0, 4, (7, vocab), generator=gen).float()  # many ties
    scores[2] = NEG_INF
    scores[4, : vocab // 2] = NEG_INF
    scores[3, 5] = float("nan")  # a NaN row is left as topk gives it
    values, index = top_k_rows(scores, k)
    for row in (0, 1, 2, 4, 5, 6):
        expected = scores[row].sort(descending=True, stable=True)
        assert torch.equal(index[row], expected.indices[:k])
        assert torch.equal(values[row], expected.values[:k])
    assert values[3, 0].isnan()
    narrow = scores[[0, 1, 2, 4], :k]  # k = V: every column, ordered
    values, index = top_k_rows(narrow, k)
    expected = narrow.sort(dim=1, descending=True, stable=True)
    assert torch.equal(index, expected.indices) and torch.equal(values, expected.values)


def test_top_k_rows_leaves_rows_with_nan_as_topk_gives_them() -> None:
    nan = float("nan")
    forced = torch.full((1, 12), NEG_INF)
    forced[0, 10] = nan  # a forced-prefix row whose token came out NaN
    for scores, k in (
        (torch.tensor([[nan, 1.0, 1.0, 0.0]]), 2),
        (torch.tensor([[nan, nan, 1.0, 1.0]]), 3),
        (forced, 6),
    ):
        values, index = top_k_rows(scores, k)  # PyTorch's topk, no tie search
        expected = scores.topk(k, dim=1).values
        assert torch.allclose(values, expected, equal_nan=True), (scores, values)
        assert torch.allclose(scores.gather(1, index), values, equal_nan=True)
        nans = int(scores.isnan().sum())  # NaN ranks first, as in topk
        assert set(index[0, :nans].tolist()) == set(
            scores[0].isnan().nonzero().squeeze(1).tolist()
        )
