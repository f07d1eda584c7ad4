"""nmt.fast: the fast CPU stepper equals the reference model it decodes."""

from __future__ import annotations

import itertools

import pytest
import torch

from nmt import fast
from nmt.fast import attention as fast_attention
from nmt.fast.seq2seq import FastSeq2Seq, sigmoid_tanh
from nmt.models.attention import build_attention, masked_softmax
from nmt.models.seq2seq import Seq2Seq
from nmt.search import BeamConfig, beam_search
from nmt.utils.runtime import bf16_supported, int8_available
from tests.conftest import tiny_model_config
from tests.unit.test_models import batch as model_batch

CELLS = ("rnn", "gru", "lstm")
FLOWS = [  # (attention, input_feeding)
    ("bahdanau", True),
    ("luong_general", True),
    ("luong_general", False),
    ("luong_dot", True),
    ("luong_concat", True),
    ("luong_concat", False),
]


def make(**overrides) -> Seq2Seq:
    torch.manual_seed(0)
    values = dict(merge_mode="sum") | overrides  # sum: luong_dot needs H == M
    model = Seq2Seq(tiny_model_config(**values), src_vocab=30, tgt_vocab=30)
    with torch.no_grad():
        model.output.weight.mul_(4.0)  # peaked distributions, as after training
    return model.eval()


def batch():
    """test_models' padded source batch, without its targets."""
    src, lengths, _ = model_batch()
    return src, lengths


def log_probs(scores: torch.Tensor) -> torch.Tensor:
    return torch.log_softmax(scores.float(), dim=-1)


@pytest.mark.parametrize(
    "flow,cell,layers,nonlinearity",
    [
        (f, c, n, "tanh")
        for f, c, n in itertools.product(FLOWS, CELLS, (1, 2))
        if not (f[0] == "luong_dot" and n == 2)
    ]
    + [(("bahdanau", True), "rnn", 2, "relu")],
)
def test_fast_steps_equal_the_reference_steps(flow, cell, layers, nonlinearity):
    """Log-probs within 1e-5 (fp32) over several beam steps, with reorders that
    duplicate rows and drop a sentence, for every flow, cell and depth."""
    attention, feeding = flow
    model = make(
        attention=attention,
        input_feeding=feeding,
        cell=cell,
        num_layers=layers,
        nonlinearity=nonlinearity,
    )
    stepper = fast.stepper(model, dtype=torch.float32)
    assert isinstance(stepper, FastSeq2Seq)
    src, lengths = batch()
    orders = [
        torch.tensor([0, 0, 1, 1, 2, 2]),  # widen to 2 beams
        torch.tensor([1, 0, 3, 3, 4, 5]),
        torch.tensor([1, 0, 5, 4]),  # sentence 1 finished
        torch.tensor([0, 1, 3, 2]),
    ]
    with torch.no_grad():
        ref, got = (
            model.init_state((src, lengths), 1),
            stepper.init_state((src, lengths), 1),
        )
        tokens = torch.tensor([model.bos_id] * 3)
        for order in orders:
            a, ref = model.step(tokens, ref)
            b, got = stepper.step(tokens, got)
            torch.testing.assert_close(log_probs(b), log_probs(a), atol=1e-5, rtol=0)
            torch.testing.assert_close(
                stepper.attention(got), model.attention(ref), atol=1e-6, rtol=0
            )
            ref, got = model.reorder(ref, order), stepper.reorder(got, order)
            tokens = a.argmax(-1)[order]


@pytest.mark.parametrize("attention", ["bahdanau", "luong_general", "luong_concat"])
@pytest.mark.parametrize("beam_size", [1, 4])
def test_fast_translations_equal_the_reference(attention, beam_size):
    """The same hypotheses (tokens) from both steppers, scores within 1e-4."""
    model = make(attention=attention)
    torch.manual_seed(3)
    src = torch.randint(4, 30, (12, 9))
    lengths = torch.randint(1, 10, (12,))
    for i, n in enumerate(lengths):
        src[i, n:] = 0
    cfg = BeamConfig(beam_size=beam_size, nbest=beam_size, max_len_b=8)
    stepper = fast.stepper(model, dtype=torch.float32)
    ref = beam_search(model, (src, lengths), lengths, cfg)
    got = beam_search(stepper, (src, lengths), lengths, cfg)
    assert [[h.tokens for h in hs] for hs in got] == [
        [h.tokens for h in hs] for hs in ref
    ]
    for hs, rs in zip(got, ref, strict=True):
        for h, r in zip(hs, rs, strict=True):
            assert abs(h.score - r.score) < 1e-4
            torch.testing.assert_close(h.attention, r.attention, atol=1e-5, rtol=0)


def test_stepper_falls_back_to_the_reference(monkeypatch, tiny_lm):
    """The model itself: without attention, for the LM, and with NMT_FAST=0."""
    assert (
        fast.stepper(make(attention="none"), dtype=torch.float32).__class__ is Seq2Seq
    )
    assert fast.stepper(tiny_lm, dtype=torch.float32) is tiny_lm
    monkeypatch.setenv("NMT_FAST", "0")
    model = make()
    assert fast.stepper(model, dtype=torch.float32) is model
    with pytest.raises(ValueError, match="int8"):
        fast.stepper(model, dtype=torch.float32, int8=True)


def test_sigmoid_tanh_matches_tanh():
    x = torch.linspace(-30, 30, 2001)
    torch.testing.assert_close(sigmoid_tanh(x), torch.tanh(x), atol=2e-7, rtol=0)


# (memory, query) scales: small; |k|, |q| ~ 50 (exp products overflow, benignly);
# |q| and then |k| past EXP_LIMIT (the sigmoid form)
@pytest.mark.parametrize("scales", [(1, 1), (15, 15), (1, 40), (200, 1)])
@pytest.mark.parametrize("kind", ["bahdanau", "luong_general", "luong_dot"])
@pytest.mark.parametrize("chunk", [1, 40, 1 << 20])
def test_fast_attention_weights_equal_the_papers(kind, scales, chunk, monkeypatch):
    """`mix` from keys prepared once per batch (additive: exp(-k), a reciprocal per
    element, in chunks of sentences) equals the reference attention, also for v
    entries that are 0 or tiny and energies large enough to overflow."""
    monkeypatch.setattr(fast_attention, "ENERGY_CHUNK", chunk)
    torch.manual_seed(0)
    attn = build_attention(kind, query_size=8, memory_size=8, attn_size=6)
    with torch.no_grad():
        if kind == "bahdanau":
            attn.v.weight[0, :2] = torch.tensor([0.0, 1e-30])
        query = torch.randn(4, 5, 8) * scales[1]
        memory = torch.randn(4, 7, 8) * scales[0]
        mask = torch.arange(7)[None, :] < torch.tensor([[7], [3], [1], [5]])
        context, expected = attn(query, attn.project_keys(memory), memory, mask)
        keys = fast_attention.project_keys(attn, memory)
        prepared = fast_attention.prepare(attn, keys)
        assert (prepared is not None) == (kind == "bahdanau" and scales[0] < 100)
        q = fast_attention.project_query(attn, query)
        weights, mixed = fast_attention.mix(attn, q, keys, prepared, mask, memory)
    assert torch.isfinite(weights[mask[:, None].expand_as(weights)]).all()
    torch.testing.assert_close(weights, expected, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(mixed, context, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(
        masked_softmax(attn.score(query, attn.project_keys(memory)), mask), expected
    )


def test_mix_adds_table_rows():
    torch.manual_seed(0)
    attn = build_attention("bahdanau", query_size=8, memory_size=8, attn_size=6)
    with torch.no_grad():
        memory, mask = torch.randn(2, 5, 8), torch.ones(2, 5, dtype=torch.bool)
        keys = fast_attention.project_keys(attn, memory)
        prepared = fast_attention.prepare(attn, keys)
        q = fast_attention.project_query(attn, torch.randn(2, 3, 8))
        offsets, index = torch.randn(10, 8), torch.tensor([4, 0, 9, 9, 1, 2])
        _, plain = fast_attention.mix(attn, q, keys, prepared, mask, memory)
        _, added = fast_attention.mix(
            attn, q, keys, prepared, mask, memory, offsets, index
        )
    torch.testing.assert_close(added, plain + offsets[index].view(2, 3, 8))


def test_fast_state_keeps_per_sentence_tensors_once():
    model = make()
    stepper = fast.stepper(model, dtype=torch.float32)
    src, lengths = batch()
    with torch.no_grad():
        state = stepper.init_state((src, lengths), 2)
    assert state.hidden.shape[0] == 6 and state.width == 2
    assert state.keys.shape[0] == state.values.shape[0] == 3
    dropped = stepper.reorder(state, torch.tensor([5, 4]))  # sentences 0, 1 finished
    torch.testing.assert_close(dropped.values, state.values[[2]])
    torch.testing.assert_close(dropped.prepared, state.prepared[[2]])
    torch.testing.assert_close(dropped.hidden, state.hidden[[5, 4]])
    assert dropped.feed is None  # Bahdanau: no input feeding


@pytest.mark.skipif(
    not bf16_supported(torch.device("cpu")),
    reason="this CPU has no native bf16 (AVX512-BF16/AMX): no bf16 encoder copy",
)
@pytest.mark.parametrize(
    "cell, nonlinearity", [(c, "tanh") for c in CELLS] + [("rnn", "relu")]
)
def test_bf16_stepper_runs_a_bf16_encoder_copy(cell, nonlinearity):
    """Under bf16 the encoder runs a bfloat16 copy of its RNN (CPU autocast leaves
    RNNs in float32): float32 out, close to the reference, padding stays zero,
    the model's own parameters untouched."""
    model = make(cell=cell, num_layers=2, nonlinearity=nonlinearity)
    stepper = fast.stepper(model, dtype=torch.bfloat16)
    assert stepper.encoder_rnn.weight_ih_l0.dtype == torch.bfloat16
    assert model.encoder.rnn.weight_ih_l0.dtype == torch.float32
    src, lengths = batch()
    with torch.no_grad():
        exact = model.encoder(src, lengths)
        half = model.encoder(src, lengths, stepper.encoder_rnn)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            a, _ = model.step(torch.full((3,), 1), model.init_state((src, lengths), 1))
            b, _ = stepper.step(
                torch.full((3,), 1), stepper.init_state((src, lengths), 1)
            )
    assert half.memory.dtype == torch.float32
    assert not torch.equal(half.memory, exact.memory)  # the copy did run
    torch.testing.assert_close(half.memory, exact.memory, atol=0.05, rtol=0.05)
    assert half.memory[2, 2:].abs().sum() == 0  # padding stays zero
    torch.testing.assert_close(log_probs(b), log_probs(a), atol=0.1, rtol=0.05)


def test_bf16_stepper_is_close_to_the_reference_on_any_cpu():
    """Without native bf16 the encoder keeps its float32 RNN; the rest runs bf16.
    (GRU: oneDNN's bf16 LSTM, which CPU autocast picks, needs native bf16.)"""
    model = make(cell="gru", num_layers=2)
    stepper = fast.stepper(model, dtype=torch.bfloat16)
    has_bf16 = bf16_supported(torch.device("cpu"))
    assert (stepper.encoder_rnn is not None) == has_bf16
    src, lengths = batch()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        a, _ = model.step(torch.full((3,), 1), model.init_state((src, lengths), 1))
        b, _ = stepper.step(torch.full((3,), 1), stepper.init_state((src, lengths), 1))
    torch.testing.assert_close(log_probs(b), log_probs(a), atol=0.1, rtol=0.05)


@pytest.mark.skipif(
    not int8_available(torch.device("cpu")), reason="no quantized engine"
)
def test_int8_stepper_is_close_to_the_reference():
    model = make()
    stepper = fast.stepper(model, dtype=torch.float32, int8=True)
    src, lengths = batch()
    with torch.no_grad():
        a, _ = model.step(torch.full((3,), 1), model.init_state((src, lengths), 1))
        b, _ = stepper.step(torch.full((3,), 1), stepper.init_state((src, lengths), 1))
    assert b.dtype == torch.float32
    torch.testing.assert_close(log_probs(b), log_probs(a), atol=0.05, rtol=0.05)


def test_translator_rebuilds_its_stepper_after_a_weight_update(tiny_spm):
    """Training validates with one Translator: an optimizer step (in place) must
    reach the next search; an unchanged model keeps its stepper."""
    from nmt.inference.translator import Translator

    torch.manual_seed(0)
    model = Seq2Seq(
        tiny_model_config(),
        src_vocab=tiny_spm.vocab_size,
        tgt_vocab=tiny_spm.vocab_size,
    )
    translator = Translator(
        model, tiny_spm, tiny_spm, device=torch.device("cpu"), precision="fp32"
    )
    first = translator.stepper()
    assert translator.stepper() is first
    with torch.no_grad():
        model.output.bias.add_(1.0)  # in place, as an optimizer step
    assert translator.stepper() is not first


@pytest.mark.parametrize("beam_size", [1, 5])
def test_a_trained_checkpoint_translates_alike_on_both_paths(
    tiny_checkpoint, beam_size, monkeypatch
):
    """The tiny trained model's translations of its corpus, fast and reference."""
    from nmt.inference.loading import load_translator
    from tests.conftest import PAIRS

    lines = [de for de, _ in PAIRS]
    cfg = BeamConfig(beam_size=beam_size, nbest=beam_size, batch_size=5)
    results = {}
    for flag in ("1", "0"):
        monkeypatch.setenv("NMT_FAST", flag)
        translator, _ = load_translator(
            tiny_checkpoint, device=torch.device("cpu"), precision="fp32"
        )
        hyps = translator.translate(lines, cfg)
        results[flag] = [[(h.tokens, h.score) for h in hs] for hs in hyps]
    assert type(translator.stepper()) is Seq2Seq  # the last run: the reference
    for fast_hyps, ref_hyps in zip(results["1"], results["0"], strict=True):
        assert [t for t, _ in fast_hyps] == [t for t, _ in ref_hyps]
        for (_, a), (_, b) in zip(fast_hyps, ref_hyps, strict=True):
            assert a == pytest.approx(b, abs=1e-4)
