"""EnsembleStepper: one member decodes exactly as alone, several average their
log-probs (hand-written tables), attention is the members' mean, modes restored."""

from __future__ import annotations

import math

import pytest
import torch

from nmt import fast
from nmt.search import BeamConfig, EnsembleStepper, beam_search
from nmt.search.stepper import inference
from tests.conftest import peaked_search_case
from tests.unit.test_beam import BOS, EOS, A, B, TableStepper, from_probs


def assert_same_hypotheses(got, ref, *, exact: bool) -> None:
    assert [[h.tokens for h in hs] for hs in got] == [
        [h.tokens for h in hs] for hs in ref
    ]
    for hs, rs in zip(got, ref, strict=True):
        for h, r in zip(hs, rs, strict=True):
            if exact:  # bit for bit: the floats themselves
                assert (h.log_prob, h.score) == (r.log_prob, r.score)
                assert torch.equal(h.attention, r.attention)
            else:
                assert h.score == pytest.approx(r.score, abs=1e-5)


@pytest.mark.parametrize("beam_size", [1, 3])
@pytest.mark.parametrize("use_fast", [True, False])
def test_an_ensemble_of_one_decodes_exactly_as_its_model(beam_size, use_fast):
    model, inputs, lengths, cfg = peaked_search_case()
    cfg = BeamConfig(beam_size=beam_size, nbest=beam_size, max_len_b=6)
    member = fast.stepper(model, dtype=torch.float32) if use_fast else model
    ref = beam_search(member, inputs, lengths, cfg)
    got = beam_search(EnsembleStepper([member]), inputs, lengths, cfg)
    assert_same_hypotheses(got, ref, exact=True)


@pytest.mark.parametrize("beam_size", [1, 3])
def test_a_model_ensembled_with_itself_finds_its_hypotheses(beam_size):
    model, inputs, lengths, _ = peaked_search_case()
    cfg = BeamConfig(beam_size=beam_size, nbest=beam_size, max_len_b=6)
    member = fast.stepper(model, dtype=torch.float32)
    ref = beam_search(member, inputs, lengths, cfg)
    got = beam_search(EnsembleStepper([member, member]), inputs, lengths, cfg)
    assert_same_hypotheses(got, ref, exact=False)


def table(probs: dict[int, float]) -> TableStepper:
    """A stepper giving `probs` at every step, whatever came before."""
    return TableStepper(lambda sentence, history: from_probs(probs))


def test_a_step_is_the_mean_of_the_members_log_probs():
    first = table({EOS: 0.5, A: 0.25, B: 0.25})
    second = table({EOS: 0.125, A: 0.5, B: 0.375})
    ensemble = EnsembleStepper([first, second])
    state = ensemble.init_state([0, 1], 1)
    scores, _ = ensemble.step(torch.tensor([BOS, BOS]), state)
    expected = [
        -math.inf,
        -math.inf,
        (math.log(0.5) + math.log(0.125)) / 2,
        (math.log(0.25) + math.log(0.5)) / 2,
        (math.log(0.25) + math.log(0.375)) / 2,
    ]
    assert scores.dtype == torch.float32 and scores.shape == (2, 5)
    for row in scores.tolist():
        assert row == pytest.approx(expected, abs=1e-6)


def test_the_search_ranks_by_the_normalised_geometric_mean():
    """Greedy takes B, the compromise neither member would pick alone; averaging
    probabilities instead would tie A and EOS (0.35 each) above B (0.3)."""
    probs = [{A: 0.6, B: 0.3, EOS: 0.1}, {A: 0.1, B: 0.3, EOS: 0.6}]
    members = [table(p) for p in probs]
    cfg = BeamConfig(beam_size=1, max_len_a=0.0, max_len_b=1, len_penalty=0.0)
    lengths = torch.zeros(1, dtype=torch.long)
    alone = [beam_search(m, [0], lengths, cfg)[0][0].tokens for m in members]
    assert alone == [(A,), ()]  # the second ends at once (EOS)
    (best,) = beam_search(EnsembleStepper(members), [0], lengths, cfg)[0]
    geometric = {t: math.sqrt(probs[0][t] * probs[1][t]) for t in (A, B, EOS)}
    assert best.tokens == (B,)
    expected = math.log(geometric[B] / sum(geometric.values()))
    assert best.log_prob == pytest.approx(expected, abs=1e-6)


class Attending(TableStepper):
    """A table stepper whose attention over 2 source positions is fixed."""

    def __init__(self, weights: list[float]) -> None:
        super().__init__(lambda sentence, history: from_probs({EOS: 1.0}))
        self.weights = weights

    def attention(self, state):
        return torch.tensor([self.weights] * len(state[1]), dtype=torch.float64)


def test_the_attention_is_the_mean_of_the_members_that_have_one():
    members = [Attending([1.0, 0.0]), table({EOS: 1.0}), Attending([0.5, 0.5])]
    ensemble = EnsembleStepper(members)
    state = ensemble.init_state([0, 1, 2], 1)
    attention = ensemble.attention(state)
    assert attention.dtype == torch.float32
    assert attention.tolist() == [[0.75, 0.25]] * 3
    blind = EnsembleStepper([table({EOS: 1.0})] * 2)
    assert blind.attention(blind.init_state([0], 1)) is None


def test_members_must_agree_on_the_special_ids():
    other = table({EOS: 1.0})
    other.eos_id = A
    with pytest.raises(ValueError, match="PAD/BOS/EOS"):
        EnsembleStepper([table({EOS: 1.0}), other])
    with pytest.raises(ValueError, match="at least one"):
        EnsembleStepper([])


def test_the_search_puts_every_member_in_eval_mode_and_restores_it():
    model, inputs, lengths, cfg = peaked_search_case()
    twin, _, _, _ = peaked_search_case()
    model.train()
    seen = []
    step = twin.step

    def watch(tokens, state):
        seen.append((model.training, twin.training))
        return step(tokens, state)

    twin.step = watch
    beam_search(EnsembleStepper([model, twin]), inputs, lengths, cfg)
    assert seen and set(seen) == {(False, False)}
    assert model.training and not twin.training  # each as it was
    with inference(EnsembleStepper([model])):
        assert not model.training
    assert model.training
