"""CharLM: cells, tying, stateful windows, prompt reading and the shared search."""

from __future__ import annotations

import pytest
import torch

from nmt.models.lm import CharLM
from nmt.search import BeamConfig, SampleConfig, beam_search, sample
from tests.conftest import tiny_lm_config

VOCAB = 40


def make(**overrides) -> CharLM:
    torch.manual_seed(0)
    return CharLM(tiny_lm_config(**overrides), vocab_size=VOCAB).eval()


def prompts() -> tuple[torch.Tensor, torch.Tensor]:
    """Three right-padded prompts (3, 4) of lengths 4, 1 and 2."""
    tokens = torch.tensor([[5, 6, 7, 8], [9, 0, 0, 0], [10, 11, 0, 0]])
    return tokens, torch.tensor([4, 1, 2])


def no_source(n: int) -> torch.Tensor:
    return torch.zeros(n, dtype=torch.long)


CELLS = [
    dict(cell="rnn"),
    dict(cell="rnn", nonlinearity="relu"),
    dict(cell="gru"),
    dict(cell="lstm"),
    dict(cell="lstm", tie_output=True),  # embed == hidden: direct tying
    dict(cell="gru", tie_output=True, embed_size=6),  # projection H -> E
    dict(cell="lstm", num_layers=1),
]


@pytest.mark.parametrize("overrides", CELLS, ids=lambda o: str(o))
def test_forward_shapes_and_gradients(overrides):
    model = make(**overrides).train()
    tokens = torch.randint(4, VOCAB, (3, 5))
    logits, hidden = model(tokens)
    lstm = 2 if model.is_lstm else 1
    layers = model.cfg.num_layers
    assert logits.shape == (3, 5, VOCAB)
    assert hidden.shape == (3, layers, model.cfg.hidden_size * lstm)
    loss, _ = model.loss(tokens, torch.randint(4, VOCAB, (3, 5)))
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    if model.cfg.tie_output:
        assert model.output.weight is model.embedding.weight


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_two_windows_with_carried_state_equal_one_pass(cell):
    model = make(cell=cell)
    tokens = torch.randint(4, VOCAB, (2, 9))
    whole, end = model(tokens)
    first, state = model(tokens[:, :4])
    second, end2 = model(tokens[:, 4:], state)
    torch.testing.assert_close(torch.cat([first, second], dim=1), whole)
    torch.testing.assert_close(end2, end)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_init_state_reads_the_prompt_like_a_forward_pass(cell):
    model = make(cell=cell)
    tokens, lengths = prompts()
    state = model.init_state((tokens, lengths), width=2)
    assert state.hidden.size(0) == 6 and state.pending.tolist() == [8, 8, 9, 9, 11, 11]
    scores, _ = model.step(torch.full((6,), model.bos_id), state)  # (6, V) logits
    for n, length in enumerate(lengths.tolist()):
        logits, _ = model(tokens[n : n + 1, :length])
        expected = logits[0, -1]
        torch.testing.assert_close(scores[2 * n], expected)
        torch.testing.assert_close(scores[2 * n + 1], expected)


def test_steps_continue_the_prompt_and_reorder_picks_rows():
    model = make()
    tokens, lengths = prompts()
    state = model.init_state((tokens[:1], lengths[:1]), width=1)
    _, state = model.step(torch.tensor([model.bos_id]), state)
    scores, _ = model.step(torch.tensor([12]), state)
    logits, _ = model(torch.tensor([[5, 6, 7, 8, 12]]))
    torch.testing.assert_close(scores[0], logits[0, -1])
    moved = model.reorder(model.init_state(prompts(), 1), torch.tensor([2, 2, 0]))
    assert moved.pending.tolist() == [11, 11, 8]
    assert model.attention(moved) is None


def test_empty_prompt_is_refused():
    model = make()
    with pytest.raises(ValueError, match="at least one character"):
        model.init_state((torch.tensor([[5]]), torch.tensor([0])), 1)


def test_label_smoothing_only_in_training():
    model = make(label_smoothing=0.2)
    tokens, targets = torch.randint(4, VOCAB, (2, 6)), torch.randint(4, VOCAB, (2, 6))
    plain, _ = model.eval().loss(tokens, targets)
    smoothed, _ = model.train().loss(tokens, targets)
    logits, _ = model.eval()(tokens)
    nll = torch.nn.functional.cross_entropy(
        logits.flatten(0, 1), targets.flatten(), reduction="sum"
    )
    torch.testing.assert_close(plain, nll)
    assert not torch.allclose(plain, smoothed)


def test_beam_search_runs_on_the_lm(tiny_lm):
    tokens, lengths = prompts()
    cfg = BeamConfig(beam_size=3, nbest=2, max_len_a=0.0, max_len_b=7)
    hyps = beam_search(tiny_lm, (tokens, lengths), no_source(3), cfg)
    assert [len(h) for h in hyps] == [2, 2, 2]
    for pair in hyps:
        assert pair[0].score >= pair[1].score
        assert all(len(h.tokens) <= 7 and h.attention is None for h in pair)
    # width 1 is greedy: argmax of a forward pass over prompt + tokens so far
    greedy = beam_search(
        tiny_lm,
        (tokens[:1], lengths[:1]),
        no_source(1),
        BeamConfig(beam_size=1, len_penalty=0.0, max_len_a=0.0, max_len_b=6),
    )[0][0].tokens
    seq = [5, 6, 7, 8]
    for token in greedy:
        logits, _ = tiny_lm(torch.tensor([seq]))
        scores = logits[0, -1].clone()
        scores[[tiny_lm.pad_id, tiny_lm.bos_id]] = -float("inf")
        assert token == int(scores.argmax())
        seq.append(token)


@pytest.mark.parametrize("temperature", [0.0, 1e-6])
def test_sampling_at_temperature_to_zero_is_greedy_beam(tiny_lm, temperature):
    tokens, lengths = prompts()
    rows = sample(
        tiny_lm, (tokens, lengths), SampleConfig(temperature=temperature, max_len=12)
    )
    greedy = beam_search(
        tiny_lm,
        (tokens, lengths),
        no_source(3),
        BeamConfig(beam_size=1, len_penalty=0.0, max_len_a=0.0, max_len_b=12),
    )
    assert rows == [list(h[0].tokens) for h in greedy]


def test_top_k_sampling_stays_in_the_lm_top_k(tiny_lm):
    torch.manual_seed(3)  # a flatter random LM: many tokens are plausible
    model = CharLM(tiny_lm_config(hidden_size=16), vocab_size=VOCAB).eval()
    prompt = torch.tensor([[5, 6]]), torch.tensor([2])
    cfg = SampleConfig(temperature=1.5, top_k=3, max_len=15, num_samples=6, seed=4)
    rows = sample(model, prompt, cfg)
    for row in rows:
        seq = [5, 6]
        for token in row:
            logits, _ = model(torch.tensor([seq]))
            scores = logits[0, -1].clone()
            scores[[model.pad_id, model.bos_id]] = -float("inf")
            assert token in scores.topk(3).indices.tolist()
            seq.append(token)
    assert len({tuple(r) for r in rows}) > 1  # it did sample


def test_seeded_sampling_is_reproducible(tiny_lm):
    inputs = prompts()
    cfg = SampleConfig(temperature=1.0, max_len=20, num_samples=2, seed=11)
    first, again = sample(tiny_lm, inputs, cfg), sample(tiny_lm, inputs, cfg)
    other = sample(tiny_lm, inputs, SampleConfig(max_len=20, num_samples=2, seed=12))
    assert first == again and first != other
