"""Ancestral sampling: greedy limit, top-k/top-p support, seeding, batched rows."""

from __future__ import annotations

import importlib
from types import SimpleNamespace

import pytest
import torch
from torch import Tensor

from nmt.search import BeamConfig, SampleConfig, beam_search, sample
from nmt.search.stepper import Deadline
from tests.unit.test_beam import (
    BOS,
    EOS,
    PAD,
    TableStepper,
    ToyRNN,
    attention_row,
    from_probs,
    random_table,
    toy_batch,
)

torch.set_num_threads(1)
INF = float("inf")
VOCAB = 10  # PAD, BOS, EOS and seven words


def allowed(log_probs: list[float], k: int = 0, p: float = 1.0) -> set[int]:
    """Tokens a top-k / nucleus sampler may emit, computed by hand."""
    probs = torch.tensor(log_probs, dtype=torch.float64).exp()
    probs[[PAD, BOS]] = 0.0
    order = sorted(range(len(probs)), key=lambda i: -probs[i])
    order = [i for i in order if probs[i] > 0][: k or None]
    kept, mass = [], 0.0
    total = float(sum(probs[i] for i in order))
    for i in order:
        if mass >= p * total:
            break
        kept.append(i)
        mass += float(probs[i])
    return set(kept)


def supports(table, rows: list[list[int]], num_samples: int, max_len: int, **filters):
    """Every emitted token, and every early EOS, was allowed by the filters."""
    for row, tokens in enumerate(rows):
        n = row // num_samples
        for i, token in enumerate(tokens):
            assert token in allowed(table(n, tuple(tokens[:i])), **filters)
        if len(tokens) < max_len:
            assert EOS in allowed(table(n, tuple(tokens)), **filters)


@pytest.mark.parametrize("temperature", [0.0, 1e-6, 1e-40])
def test_temperature_to_zero_is_greedy(temperature: float):
    model = ToyRNN(seed=5)
    src, lengths = toy_batch([0, 1, 2])
    greedy = beam_search(
        model,
        (src, lengths),
        lengths * 0,
        BeamConfig(beam_size=1, len_penalty=0.0, max_len_a=0.0, max_len_b=6),
    )
    cfg = SampleConfig(temperature=temperature, max_len=6)
    rows = sample(model, (src, lengths), cfg)
    assert rows == [list(hyps[0].tokens) for hyps in greedy]


def test_top_k_never_leaves_the_top_k():
    table = random_table(VOCAB)
    cfg = SampleConfig(top_k=2, max_len=4, num_samples=30)
    rows = sample(TableStepper(table), [0, 1], cfg)
    assert len(rows) == 60
    supports(table, rows, 30, 4, k=2)


def test_top_p_stays_in_the_nucleus():
    table = random_table(VOCAB)
    cfg = SampleConfig(top_p=0.5, max_len=4, num_samples=30)
    rows = sample(TableStepper(table), [0, 1], cfg)
    supports(table, rows, 30, 4, p=0.5)
    assert len({tuple(r) for r in rows}) > 1


def test_seeded_sampling_is_reproducible():
    table = random_table(VOCAB)
    cfg = SampleConfig(max_len=5, num_samples=8, seed=7)
    first = sample(TableStepper(table), [0, 1], cfg)
    assert sample(TableStepper(table), [0, 1], cfg) == first
    generator = torch.Generator().manual_seed(7)
    assert sample(TableStepper(table), [0, 1], cfg, generator=generator) == first
    cfg.seed = 8
    assert sample(TableStepper(table), [0, 1], cfg) != first


def test_batched_rows_are_independent_samples_of_their_own_input():
    def split(n: int, history: tuple[int, ...]) -> list[float]:
        words = (3, 4) if n == 0 else (5, 6)  # input n only allows its own words
        return from_probs({EOS: 0.2, words[0]: 0.4, words[1]: 0.4}, VOCAB)

    rows = sample(TableStepper(split), [0, 1], SampleConfig(max_len=5, num_samples=20))
    assert all(set(r) <= {3, 4} for r in rows[:20])
    assert all(set(r) <= {5, 6} for r in rows[20:])
    assert len({tuple(r) for r in rows[:20]}) > 5  # not one sample copied 20 times


def test_prefix_is_fed_but_not_returned():
    script = {
        (5,): {6: 1.0},
        (5, 6): {EOS: 1.0},
        (3, 3): {4: 1.0},
        (3, 3, 4): {EOS: 1.0},
    }

    def table(n: int, history: tuple[int, ...]) -> list[float]:
        return from_probs(script.get(history, {w: 0.1 for w in range(3, VOCAB)}), VOCAB)

    cfg = SampleConfig(max_len=5, num_samples=2)
    rows = sample(TableStepper(table), [0, 1], cfg, prefix=[[5], [3, 3]])
    assert rows == [[6], [6], [4], [4]]


def test_max_len_counts_tokens_after_the_prefix():
    def no_eos(n: int, history: tuple[int, ...]) -> list[float]:
        return from_probs({3: 0.5, 4: 0.5}, VOCAB)

    cfg = SampleConfig(max_len=3, num_samples=4)
    rows = sample(TableStepper(no_eos), [0], cfg, prefix=[[4, 4]])
    assert all(len(r) == 3 for r in rows)


def test_deadline_stops_every_row_with_what_it_has(monkeypatch):
    now = [0.0]
    module = importlib.import_module("nmt.search.sample")  # not the function
    monkeypatch.setattr(module, "time", SimpleNamespace(monotonic=lambda: now[0]))

    def no_eos(n: int, history: tuple[int, ...]) -> list[float]:
        now[0] += 1.0  # each row's step takes a second
        return from_probs({3: 0.5, 4: 0.5}, VOCAB)

    cfg = SampleConfig(max_len=100, num_samples=2)
    rows = sample(TableStepper(no_eos), [0], cfg, prefix=[[4]], deadline=6.0)
    # steps begin at 0, 2 and 4 s: the prefix token, then two sampled tokens
    assert [len(r) for r in rows] == [2, 2]
    assert sample(TableStepper(no_eos), [0], cfg, deadline=0.0) == [[], []]


def test_on_step_reports_every_token_with_its_attention_as_it_comes():
    table = random_table(VOCAB)
    seen: dict[int, list[tuple[int, Tensor]]] = {}

    def on_step(rows: Tensor, tokens: Tensor, attention: Tensor | None) -> None:
        assert rows.tolist() == sorted(rows.tolist()) and attention is not None
        for row, token, weights in zip(rows.tolist(), tokens.tolist(), attention):
            seen.setdefault(row, []).append((token, weights))

    cfg = SampleConfig(max_len=4, num_samples=3, seed=1)
    prefix = [[5], [6, 7]]
    rows = sample(TableStepper(table, src_len=4), [0, 1], cfg, prefix, on_step=on_step)
    for row, tokens in enumerate(rows):
        fed = prefix[row // 3] + tokens  # the prefix, then the samples, no EOS
        assert [token for token, _ in seen[row]] == fed
        for i, (_, weights) in enumerate(seen[row]):
            assert torch.equal(weights, attention_row(tuple(fed[:i]), 4))


def test_a_stopped_deadline_ends_the_rows_at_the_next_step():
    def no_eos(n: int, history: tuple[int, ...]) -> list[float]:
        return from_probs({3: 0.5, 4: 0.5}, VOCAB)

    deadline, steps = Deadline(float("inf")), []

    def stop_after_three(rows: Tensor, tokens: Tensor, attention) -> None:
        steps.append(len(rows))
        if len(steps) == 3:  # as the REPL's Ctrl-C does, in the middle of a search
            deadline.stop()

    cfg = SampleConfig(max_len=100, num_samples=2)
    rows = sample(
        TableStepper(no_eos), [0], cfg, deadline=deadline, on_step=stop_after_three
    )
    assert [len(r) for r in rows] == [3, 3] and deadline.stopped


def test_bad_settings_raise():
    with pytest.raises(ValueError, match="top_p"):
        SampleConfig(top_p=0.0)
    with pytest.raises(ValueError, match="temperature"):
        SampleConfig(temperature=-1.0)
    for temperature in (float("nan"), INF):
        with pytest.raises(ValueError, match="temperature must be a finite number"):
            SampleConfig(temperature=temperature)


def test_a_huge_temperature_samples_the_allowed_tokens_uniformly():
    # log-probs / 1e39 are all ~0: every allowed token equally likely, PAD and BOS
    # (-inf) still never drawn, no NaN from inf / inf
    def table(n, history):
        return from_probs({EOS: 0.01, 3: 0.9, 4: 0.09}, vocab=5)

    cfg = SampleConfig(temperature=1e39, max_len=1, num_samples=300, seed=0)
    rows = sample(TableStepper(table), [0], cfg)
    first = [row[0] if row else EOS for row in rows]
    assert set(first) == {EOS, 3, 4}  # EOS ends a row: an empty one
    assert PAD not in first and BOS not in first
