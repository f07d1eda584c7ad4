"""Beam search on hand-written probability tables, brute force and a toy attentional RNN."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from types import SimpleNamespace

import pytest
import torch
from torch import Tensor, nn

from nmt.search import BeamConfig, Hypothesis, beam_search

torch.set_num_threads(1)

PAD, BOS, EOS, A, B = 0, 1, 2, 3, 4  # toy vocabulary: A and B are the words
INF = float("inf")
Table = Callable[
    [int, tuple[int, ...]], list[float]
]  # (sentence, history) -> log-probs


class TableStepper:
    """Log-probs are a pure function of (sentence, tokens generated so far).

    The state is (sentence ids (R,), histories); attention, when asked for, is a
    one-hot over `src_len` positions that depends on the history, so a test can
    recompute it from a hypothesis' tokens.
    """

    pad_id, bos_id, eos_id = PAD, BOS, EOS

    def __init__(
        self,
        table: Table,
        src_len: int | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        """dtype: of the step's scores."""
        self.table, self.src_len, self.dtype = table, src_len, dtype
        self.rows_per_step: list[int] = []

    def init_state(self, inputs: list[int], width: int) -> tuple[Tensor, list]:
        sentences = torch.tensor(inputs).repeat_interleave(width)  # (N*B,)
        return sentences, [()] * len(sentences)

    def step(self, tokens: Tensor, state: tuple[Tensor, list]) -> tuple[Tensor, tuple]:
        sentences, histories = state
        self.rows_per_step.append(len(histories))
        new = [h + (t,) for h, t in zip(histories, tokens.tolist(), strict=True)]
        rows = [
            self.table(n, h[1:]) for n, h in zip(sentences.tolist(), new, strict=True)
        ]
        return torch.tensor(rows, dtype=self.dtype), (sentences, new)

    def reorder(self, state: tuple[Tensor, list], index: Tensor) -> tuple[Tensor, list]:
        sentences, histories = state
        return sentences[index], [histories[i] for i in index.tolist()]

    def attention(self, state: tuple[Tensor, list]) -> Tensor | None:
        if self.src_len is None:
            return None
        return torch.stack([attention_row(h[1:], self.src_len) for h in state[1]])


def attention_row(history: tuple[int, ...], src_len: int) -> Tensor:
    row = torch.zeros(src_len)
    row[(sum(history) + len(history)) % src_len] = 1.0
    return row


def from_probs(probs: dict[int, float], vocab: int = 5) -> list[float]:
    return [math.log(probs[i]) if probs.get(i, 0) > 0 else -INF for i in range(vocab)]


SCRIPT = {
    (): {EOS: 0.1, A: 0.5, B: 0.4},
    (A,): {EOS: 0.2, A: 0.5, B: 0.3},
    (B,): {EOS: 0.9, A: 0.05, B: 0.05},
    (A, A): {EOS: 0.6, A: 0.3, B: 0.1},
    (A, B): {EOS: 0.4, A: 0.35, B: 0.25},
}
FALLBACK = {EOS: 0.5, A: 0.25, B: 0.25}


def scripted(n: int, history: tuple[int, ...]) -> list[float]:
    return from_probs(SCRIPT.get(history, FALLBACK))


def random_table(vocab: int = 5, eos_bias: float = 0.0) -> Table:
    """Seeded random log-probs over EOS and the words; PAD and BOS impossible."""

    def table(n: int, history: tuple[int, ...]) -> list[float]:
        gen = torch.Generator().manual_seed(hash((n, history)) & 0xFFFFFFFF)
        logits = torch.randn(vocab - 2, generator=gen, dtype=torch.float64)
        logits[0] += eos_bias
        return [-INF, -INF, *logits.log_softmax(0).tolist()]

    return table


def config(**overrides) -> BeamConfig:
    values = dict(beam_size=2, nbest=1, len_penalty=0.0, max_len_a=0.0, max_len_b=3)
    return BeamConfig(**{**values, **overrides})


def search(stepper, sentences: list[int], cfg: BeamConfig, prefix=None, src=None):
    src_lengths = torch.tensor(src if src is not None else [0] * len(sentences))
    return beam_search(stepper, sentences, src_lengths, cfg, prefix)


def lp(length: int, alpha: float) -> float:
    return ((5 + length) / 6) ** alpha


def check_scores(
    table: Table, n: int, hyps: list[Hypothesis], max_len: int, alpha: float
):
    """Each hypothesis' log_prob and score agree with the table; sorted, distinct."""
    for hyp in hyps:
        ended = len(hyp.tokens) < max_len  # only max-length hypotheses lack EOS
        steps = [*hyp.tokens, EOS] if ended else list(hyp.tokens)
        log_prob = sum(table(n, tuple(steps[:i]))[t] for i, t in enumerate(steps))
        assert hyp.log_prob == pytest.approx(log_prob, rel=1e-5)
        assert hyp.score == pytest.approx(log_prob / lp(len(steps), alpha), rel=1e-5)
    assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)
    assert len({h.tokens for h in hyps}) == len(hyps)


# -- hand-written tables -------------------------------------------------------


def test_scripted_beam_two_raw_log_prob():
    # step 1: B.EOS (.36) is ranked first and finished; A.A (.25) and A.B (.15) go on
    hyps = search(TableStepper(scripted), [0], config(nbest=2))[0]
    assert [h.tokens for h in hyps] == [(B,), (A, A)]
    assert [h.log_prob for h in hyps] == pytest.approx([math.log(0.36), math.log(0.15)])
    assert [h.score for h in hyps] == pytest.approx([math.log(0.36), math.log(0.15)])
    assert hyps[0].attention is None


def test_scripted_beam_two_length_penalty_reranks():
    hyps = search(TableStepper(scripted), [0], config(nbest=2, len_penalty=10.0))[0]
    # A.A.EOS and the unfinished A.A.A (kept at max length) both have |Y| = 3
    assert [h.tokens for h in hyps] == [(A, A), (A, A, A)]
    assert [h.log_prob for h in hyps] == pytest.approx(
        [math.log(0.15), math.log(0.075)]
    )
    expected = [math.log(0.15) / lp(3, 10), math.log(0.075) / lp(3, 10)]
    assert [h.score for h in hyps] == pytest.approx(expected)


def test_scripted_greedy_stops_once_nothing_can_beat_the_finished():
    stepper = TableStepper(scripted)
    hyps = search(stepper, [0], config(beam_size=1, max_len_b=4))[0]
    assert [(h.tokens, h.log_prob) for h in hyps] == [
        ((A, A), pytest.approx(math.log(0.15)))
    ]
    assert len(stepper.rows_per_step) == 3  # A.A.EOS found at step 3, A.A.A is worse


def test_scripted_done_at_b_finished_even_with_length_penalty():
    stepper = TableStepper(scripted)
    hyps = search(stepper, [0], config(beam_size=1, max_len_b=4, len_penalty=10.0))[0]
    # B = 1 finished hypothesis (A.A.EOS, step 3) ends the sentence (fairseq's rule),
    # although the unfinished A.A.A might have won under lp(4)
    assert hyps[0].tokens == (A, A)
    assert hyps[0].score == pytest.approx(math.log(0.15) / lp(3, 10.0))
    assert len(stepper.rows_per_step) == 3


def test_early_stop_before_b_finished_only_when_nothing_can_beat_nbest():
    """Beam 2, nbest 1, raw log-probs: B.EOS (.36) finishes at step 2 and every live
    hypothesis (best A.A, .25) is already below it: no need for a 2nd finished one."""
    stepper = TableStepper(scripted)
    hyps = search(stepper, [0], config(beam_size=2, nbest=1, max_len_b=4))[0]
    assert hyps[0].tokens == (B,)
    assert len(stepper.rows_per_step) == 2
    stepper = TableStepper(scripted)  # with a length penalty the bound is looser
    search(stepper, [0], config(beam_size=2, nbest=1, max_len_b=4, len_penalty=10.0))
    assert len(stepper.rows_per_step) > 2


# -- brute force ---------------------------------------------------------------


def enumerate_all(table: Table, n: int, max_len: int, alpha: float) -> list[tuple]:
    """Every hypothesis: words then EOS (< max_len words) or max_len words."""
    results = []
    for length in range(max_len + 1):
        for words in itertools.product((A, B), repeat=length):
            steps = [*words, EOS] if length < max_len else list(words)
            log_prob = sum(table(n, tuple(steps[:i]))[t] for i, t in enumerate(steps))
            results.append((log_prob / lp(len(steps), alpha), words))
    return sorted(results, reverse=True)


@pytest.mark.parametrize("alpha", [0.0, 1.0, -0.5])
def test_exhaustive_width_matches_brute_force(alpha: float):
    # 15 hypotheses in all; at the last step 12 candidates, so B = 15 keeps every
    # EOS among the first B. Step 0 has 3 finite candidates out of 2B = 30.
    table = random_table()
    cfg = config(beam_size=15, nbest=15, len_penalty=alpha)
    hyps = search(TableStepper(table), [0], cfg)[0]
    expected = enumerate_all(table, 0, 3, alpha)
    assert [h.tokens for h in hyps] == [words for _, words in expected]
    assert [h.score for h in hyps] == pytest.approx([s for s, _ in expected], rel=1e-5)


# -- configuration and constraints ---------------------------------------------


def test_nbest_larger_than_beam_is_a_clear_error():
    with pytest.raises(ValueError, match="nbest must be between 1 and beam_size"):
        BeamConfig(beam_size=2, nbest=3)
    cfg = BeamConfig(beam_size=3, nbest=3)
    cfg.beam_size = 2  # e.g. changed at run time by a REPL
    with pytest.raises(ValueError, match="nbest"):
        search(TableStepper(scripted), [0], cfg)


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("batch_size", 0, "batch_size must be >= 1"),
        ("len_penalty", float("nan"), "len_penalty must be a finite number"),
        ("len_penalty", float("inf"), "len_penalty must be a finite number"),
        ("max_len_a", -1.0, "max_len_a must be finite and >= 0"),
        ("min_len", -1, "min_len must be >= 0"),
        ("max_len", -1, "max_len must be >= 0"),
        ("max_src_len", -5, "max_src_len must be >= 0"),
        ("no_repeat_ngram", -2, "no_repeat_ngram must be >= 0"),
    ],
)
def test_config_refuses_values_the_search_cannot_honour(field, value, says):
    with pytest.raises(ValueError, match=says):
        BeamConfig(**{field: value})


@pytest.mark.parametrize("min_len", [0, 2, 3, 6])
def test_min_len_and_max_len(min_len: int):
    table = random_table(eos_bias=2.0)
    cfg = config(beam_size=3, nbest=3, max_len_b=4, min_len=min_len, len_penalty=1.0)
    hyps = search(TableStepper(table), [0], cfg)[0]
    assert len(hyps) == 3
    assert all(min(min_len, 4) <= len(h.tokens) <= 4 for h in hyps)
    check_scores(table, 0, hyps, 4, 1.0)


def test_max_len_grows_with_source_length():
    table = random_table(eos_bias=-3.0)  # EOS unlikely: hypotheses hit max length
    cfg = config(beam_size=2, nbest=2, max_len_a=1.5, max_len_b=1)
    results = search(TableStepper(table), [0, 1], cfg, src=[1, 4])
    assert max(len(h.tokens) for h in results[0]) <= 2  # int(1.5 * 1 + 1)
    assert max(len(h.tokens) for h in results[1]) == 7  # int(1.5 * 4 + 1)


def test_max_len_caps_what_the_source_length_allows():
    table = random_table(eos_bias=-3.0)  # EOS unlikely: hypotheses hit max length
    cfg = config(beam_size=2, nbest=2, max_len_a=1.5, max_len_b=1, max_len=5)
    results = search(TableStepper(table), [0, 1], cfg, src=[1, 40])
    assert max(len(h.tokens) for h in results[0]) <= 2  # int(1.5 * 1 + 1) < 5
    assert max(len(h.tokens) for h in results[1]) == 5  # not int(1.5 * 40 + 1)
    # a forced prefix longer than the cap is still kept whole
    cfg = config(beam_size=2, max_len=2)
    hyps = search(TableStepper(table), [0], cfg, prefix=[[A, B, A]])[0]
    assert hyps[0].tokens == (A, B, A)


class Clock:
    """A fake `time.monotonic`, moved on by the test."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_deadline_stops_the_search_with_the_best_live_beams(monkeypatch):
    clock = Clock()
    monkeypatch.setattr("nmt.search.beam.time", SimpleNamespace(monotonic=clock))
    table = random_table(eos_bias=-3.0)

    class Slow(TableStepper):
        def step(self, tokens, state):
            clock.now += 1.0
            return super().step(tokens, state)

    stepper = Slow(table)
    cfg = config(beam_size=2, nbest=2, max_len_b=50)
    results = beam_search(stepper, [0, 1], torch.zeros(2), cfg, deadline=3.0)
    assert len(stepper.rows_per_step) == 3  # the steps started before 3.0 s
    short = config(beam_size=2, nbest=2, max_len_b=3)
    unlimited = search(TableStepper(table), [0, 1], short)
    for hyps, full in zip(results, unlimited, strict=True):
        assert 1 <= len(hyps) <= 2 and all(len(h.tokens) <= 3 for h in hyps)
        assert hyps[0] == full[0]  # what a 3-token max length gives
    # a deadline already passed: one empty hypothesis per sentence, no step
    stepper = Slow(table)
    results = beam_search(stepper, [0, 1], torch.zeros(2), cfg, deadline=0.0)
    assert results == [[Hypothesis((), 0.0, 0.0)]] * 2 and not stepper.rows_per_step


def test_without_attention_the_same_hypotheses():
    cfg = config(beam_size=3, nbest=3, max_len_b=4)
    src = torch.tensor([4, 3])
    kept = beam_search(TableStepper(random_table(), src_len=4), [0, 1], src, cfg)
    stepper = TableStepper(random_table(), src_len=4)
    bare = beam_search(stepper, [0, 1], src, cfg, keep_attention=False)
    assert bare == kept  # attention is not compared
    assert all(h.attention is None for hyps in bare for h in hyps)
    assert all(h.attention is not None for hyps in kept for h in hyps)


def test_no_repeat_ngram():
    def repetitive(n: int, history: tuple[int, ...]) -> list[float]:
        return from_probs({EOS: 0.05, A: 0.8, B: 0.15})

    cfg = config(beam_size=3, nbest=3, max_len_b=6)
    assert search(TableStepper(repetitive), [0], cfg)[0][0].tokens == (A,) * 6
    cfg.no_repeat_ngram = 2
    hyps = search(TableStepper(repetitive), [0], cfg)[0]
    assert hyps
    for hyp in hyps:
        bigrams = list(zip(hyp.tokens, hyp.tokens[1:], strict=False))
        assert len(bigrams) == len(set(bigrams))


def test_prefix_is_forced_scored_and_batched_like_alone():
    table = random_table()
    cfg = config(beam_size=3, nbest=3, max_len_b=4, len_penalty=1.0)
    prefixes = [[B, B, B], [], [A]]
    batched = search(TableStepper(table), [0, 1, 2], cfg, prefix=prefixes)
    for n, prefix in enumerate(prefixes):
        alone = search(TableStepper(table), [n], cfg, prefix=[prefix])[0]
        assert [(h.tokens, h.score) for h in batched[n]] == [
            (h.tokens, pytest.approx(h.score)) for h in alone
        ]
        assert all(h.tokens[: len(prefix)] == tuple(prefix) for h in batched[n])
        check_scores(table, n, batched[n], 4, 1.0)
    assert len({h.tokens for h in batched[0]}) == 3  # beams split after the prefix


def test_prefix_token_is_forced_even_when_unlikely():
    # B has probability .4 at step 0 but A.A.EOS is best without a prefix
    hyps = search(TableStepper(scripted), [0], config(nbest=2), prefix=[[B, A]])[0]
    assert all(h.tokens[:2] == (B, A) for h in hyps)
    assert hyps[0].log_prob < math.log(0.4 * 0.05) + 1e-6


@pytest.mark.parametrize(
    ("n", "prefix"), [(1, [A, A]), (2, [A, A, A]), (2, [A, B, A, B])]
)
def test_prefix_is_kept_whole_even_when_it_repeats_ngrams(n: int, prefix: list[int]):
    def table(sentence: int, history: tuple[int, ...]) -> list[float]:
        return from_probs({EOS: 0.2, A: 0.4, B: 0.4})

    cfg = config(beam_size=2, nbest=2, max_len_b=7, no_repeat_ngram=n)
    hyps = search(TableStepper(table), [0], cfg, prefix=[prefix])[0]
    assert hyps
    for hyp in hyps:
        assert hyp.tokens[: len(prefix)] == tuple(prefix)
        assert math.isfinite(hyp.log_prob)
        grams = [hyp.tokens[i : i + n] for i in range(len(hyp.tokens) - n + 1)]
        for end in range(len(prefix), len(hyp.tokens)):  # generated tokens only
            gram = hyp.tokens[end - n + 1 : end + 1]
            assert gram not in grams[: end - n + 1], (hyp.tokens, gram)


@pytest.mark.parametrize(
    ("prefix", "message"),
    [([A, EOS], "not PAD/BOS/EOS"), ([BOS], "not PAD/BOS/EOS"), ([-2], ">= 0")],
)
def test_prefix_ids_must_be_ordinary_tokens(prefix: list[int], message: str):
    with pytest.raises(ValueError, match=message):
        search(TableStepper(scripted), [0, 1], config(), prefix=[[], prefix])


def test_prefix_id_outside_the_vocabulary_is_a_clear_error():
    with pytest.raises(ValueError, match="outside the vocabulary \\(size 5\\)"):
        search(TableStepper(scripted), [0], config(), prefix=[[A, 5]])


def tied(n: int, history: tuple[int, ...]) -> list[float]:
    """Logits over 10 tokens: at step 0 tokens 3..9 exactly tied, then EOS."""
    if not history:
        return [-INF, -INF, -5.0] + [0.0] * 7
    return [-INF, -INF, 0.0] + [-20.0] * 7


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("beam", [1, 3])
def test_exact_ties_go_to_the_lower_token_alone_and_in_a_batch(
    dtype: torch.dtype, beam: int
):
    # a prefixed sentence (or n-gram bans) sends the whole batch through the
    # masked log-probs: the same tie rule whichever way the candidates are found
    cfg = config(beam_size=beam, nbest=beam, max_len_b=4)
    expected = [(t,) for t in range(3, 3 + beam)]  # lowest tokens first

    def tokens(hyps: list[Hypothesis]) -> list[tuple[int, ...]]:
        return [h.tokens for h in hyps]

    assert tokens(search(TableStepper(tied, dtype=dtype), [0], cfg)[0]) == expected
    batched = search(TableStepper(tied, dtype=dtype), [0, 1], cfg, prefix=[[], [A]])
    assert tokens(batched[0]) == expected
    cfg.no_repeat_ngram = 3  # bans nothing here
    assert tokens(search(TableStepper(tied, dtype=dtype), [0], cfg)[0]) == expected


def test_finished_sentences_leave_the_batch():
    stepper = TableStepper(random_table(eos_bias=-3.0))
    search(stepper, [0, 1], config(beam_size=3, max_len_a=1.0, max_len_b=1), src=[0, 3])
    # the first step has one row per sentence (its B beams are the same BOS row);
    # sentence 0 stops after 1 token, then only sentence 1's 3 beams are stepped
    assert stepper.rows_per_step == [2, 3, 3, 3]


def test_all_minus_inf_still_returns_one_hypothesis():
    stepper = TableStepper(lambda n, history: [-INF] * 5)
    results = search(stepper, [0, 1], config())
    assert results == [[Hypothesis((), 0.0, 0.0)]] * 2


def test_attention_is_aligned_with_tokens():
    stepper = TableStepper(random_table(), src_len=4)
    cfg = config(beam_size=3, nbest=3, max_len_b=4)
    results = search(stepper, [0, 1], cfg, src=[4, 3])
    for n, src_len in enumerate([4, 3]):
        for hyp in results[n]:
            assert hyp.attention is not None
            assert hyp.attention.shape == (len(hyp.tokens), src_len)
            for i in range(len(hyp.tokens)):
                expected = attention_row(hyp.tokens[:i], 4)[:src_len]
                assert torch.equal(hyp.attention[i], expected)


# -- a toy attentional RNN ------------------------------------------------------


class ToyRNN(nn.Module):
    """Seeded GRU decoder attending over embedded source tokens; float64, batch-first."""

    pad_id, bos_id, eos_id = PAD, BOS, EOS

    def __init__(self, vocab: int = 8, hidden: int = 8, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.embed = nn.Embedding(vocab, hidden)
        self.cell = nn.GRUCell(hidden, hidden)
        self.out = nn.Linear(2 * hidden, vocab)
        for p in self.parameters():
            p.data = torch.randn(p.shape, generator=gen)
        self.double()
        self.modes: list[bool] = []

    def init_state(
        self, inputs: tuple[Tensor, Tensor], width: int
    ) -> tuple[Tensor, ...]:
        src, lengths = inputs  # (N, S), (N,)
        mask = torch.arange(src.size(1)) < lengths.unsqueeze(1)  # (N, S)
        memory = self.embed(src)  # (N, S, H)
        hidden = (memory * mask.unsqueeze(2)).sum(1) / lengths.unsqueeze(1)  # (N, H)
        attn = torch.zeros(src.shape, dtype=memory.dtype)  # (N, S)
        return tuple(
            t.repeat_interleave(width, 0) for t in (hidden, memory, mask, attn)
        )

    def step(self, tokens: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, tuple]:
        self.modes.append(self.training)
        hidden, memory, mask, _ = state
        hidden = self.cell(self.embed(tokens), hidden)  # (R, H)
        scores = (memory @ hidden.unsqueeze(2)).squeeze(2)  # (R, S)
        attn = scores.masked_fill(~mask, -INF).softmax(1)  # (R, S)
        context = (attn.unsqueeze(2) * memory).sum(1)  # (R, H)
        logits = self.out(torch.cat([hidden, context], 1))  # (R, V)
        return logits.log_softmax(1), (hidden, memory, mask, attn)

    def reorder(self, state: tuple[Tensor, ...], index: Tensor) -> tuple[Tensor, ...]:
        return tuple(t.index_select(0, index) for t in state)

    def attention(self, state: tuple[Tensor, ...]) -> Tensor:
        return state[3]


SOURCES = [[5, 6, 7, 3, 4], [4, 4], [7, 3, 6]]


def toy_batch(indices: list[int]) -> tuple[Tensor, Tensor]:
    rows = [SOURCES[i] for i in indices]
    src = torch.full((len(rows), max(map(len, rows))), PAD)
    for i, row in enumerate(rows):
        src[i, : len(row)] = torch.tensor(row)
    return src, torch.tensor([len(r) for r in rows])


def greedy(model: ToyRNN, index: int, max_len: int) -> tuple[list[int], float]:
    """Step-by-step argmax (PAD and BOS never generated), the width-1 reference."""
    state = model.init_state(toy_batch([index]), 1)
    token, tokens, total = BOS, [], 0.0
    with torch.no_grad():
        for _ in range(max_len):
            log_probs, state = model.step(torch.tensor([token]), state)
            log_probs = log_probs[0].float()
            log_probs[[PAD, BOS]] = -INF
            token = int(log_probs.argmax())
            total += float(log_probs[token])
            if token == EOS:
                break
            tokens.append(token)
    return tokens, total


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_width_one_is_argmax(seed: int):
    model = ToyRNN(seed=seed)
    cfg = config(beam_size=1, max_len_b=6)
    src, lengths = toy_batch([0, 1, 2])
    results = beam_search(model, (src, lengths), lengths * 0, cfg)
    for n in range(3):
        tokens, log_prob = greedy(model, n, 6)
        assert results[n][0].tokens == tuple(tokens)
        assert results[n][0].log_prob == pytest.approx(log_prob, rel=1e-5)


def test_sentence_decodes_the_same_alone_and_in_a_batch():
    model = ToyRNN(seed=3)
    cfg = config(beam_size=4, nbest=4, len_penalty=1.0, max_len_a=1.0, max_len_b=2)
    src, lengths = toy_batch([0, 1, 2])
    batched = beam_search(model, (src, lengths), lengths, cfg)
    for n in range(3):
        src_n, lengths_n = toy_batch([n])
        alone = beam_search(model, (src_n, lengths_n), lengths_n, cfg)[0]
        assert [h.tokens for h in batched[n]] == [h.tokens for h in alone]
        assert [h.score for h in batched[n]] == pytest.approx([h.score for h in alone])
        for got, want in zip(batched[n], alone, strict=True):
            assert torch.allclose(got.attention, want.attention, atol=1e-6)


def test_nbest_is_distinct_sorted_with_source_attention():
    model = ToyRNN(seed=4)
    cfg = config(beam_size=5, nbest=5, len_penalty=1.0, max_len_b=5)
    src, lengths = toy_batch([0, 1, 2])
    results = beam_search(model, (src, lengths), lengths, cfg)
    for n, hyps in enumerate(results):
        assert len(hyps) == 5
        assert len({h.tokens for h in hyps}) == 5
        assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)
        for hyp in hyps:
            assert hyp.attention.shape == (len(hyp.tokens), len(SOURCES[n]))
            assert torch.allclose(hyp.attention.sum(1), torch.ones(len(hyp.tokens)))


def test_eval_mode_inside_and_training_mode_restored():
    model = ToyRNN().train()
    src, lengths = toy_batch([0])
    hyps = beam_search(model, (src, lengths), lengths, config(max_len_b=2))
    assert model.training
    assert model.modes and not any(model.modes)
    assert not hyps[0][0].attention.requires_grad
