"""Encoder/attention/decoder/Seq2Seq: padding invariance, masks, every combination runs."""

from __future__ import annotations

import itertools

import pytest
import torch

from nmt.models.attention import build_attention
from nmt.models.seq2seq import Seq2Seq
from tests.conftest import tiny_model_config

CELLS = ("rnn", "gru", "lstm")
ATTENTIONS = ("bahdanau", "luong_dot", "luong_general", "luong_concat", "none")
MERGES = ("concat", "sum", "mul", "ave")


def make(**overrides) -> Seq2Seq:
    torch.manual_seed(0)
    return Seq2Seq(tiny_model_config(**overrides), src_vocab=30, tgt_vocab=30).eval()


def batch():
    torch.manual_seed(1)
    src = torch.randint(4, 30, (3, 7))
    lengths = torch.tensor([7, 4, 2])
    for i, n in enumerate(lengths):
        src[i, n:] = 0
    tgt = torch.randint(4, 30, (3, 5))
    return src, lengths, tgt


@pytest.mark.parametrize(
    "cell,attention,merge", list(itertools.product(CELLS, ATTENTIONS, MERGES))
)
def test_every_combination_forward_backward(cell, attention, merge):
    hidden = 12 if merge != "concat" else 12
    overrides = dict(
        cell=cell,
        attention=attention,
        merge_mode=merge,
        hidden_size=hidden,
        num_layers=2,
        dropout=0.1,
    )
    if attention == "luong_dot" and merge == "concat":
        with pytest.raises(ValueError, match="luong_dot"):
            make(**overrides)
        return
    model = make(**overrides).train()
    src, lengths, tgt = batch()
    loss = model.loss(src, lengths, tgt, tgt)
    loss.backward()
    assert torch.isfinite(loss)
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("merge", MERGES)
def test_padded_sentence_encodes_like_alone(cell, merge):
    model = make(cell=cell, merge_mode=merge)
    src, lengths, _ = batch()
    together = model.encoder(src, lengths)
    for i in range(3):
        n = int(lengths[i])
        alone = model.encoder(src[i : i + 1, :n], lengths[i : i + 1])
        torch.testing.assert_close(
            together.memory[i, :n], alone.memory[0], atol=1e-5, rtol=1e-4
        )
        torch.testing.assert_close(
            together.final[i], alone.final[0], atol=1e-5, rtol=1e-4
        )
        assert together.memory[i, n:].abs().sum() == 0


@pytest.mark.parametrize("attention", ["bahdanau", "luong_general", "luong_concat"])
@pytest.mark.parametrize("feeding", [True, False])
def test_decoder_outputs_padding_invariant(attention, feeding):
    model = make(attention=attention, input_feeding=feeding)
    src, lengths, tgt = batch()
    with torch.no_grad():
        together = model(src, lengths, tgt)
        for i in range(3):
            n = int(lengths[i])
            alone = model(src[i : i + 1, :n], lengths[i : i + 1], tgt[i : i + 1])
            torch.testing.assert_close(together[i], alone[0], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(
    "kind", ["bahdanau", "luong_dot", "luong_general", "luong_concat"]
)
def test_attention_weights_sum_to_one_over_unmasked(kind):
    torch.manual_seed(0)
    attn = build_attention(kind, query_size=8, memory_size=8, attn_size=6)
    memory = torch.randn(2, 5, 8)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    context, weights = attn(
        torch.randn(2, 3, 8), attn.project_keys(memory), memory, mask
    )
    assert context.shape == (2, 3, 8) and weights.shape == (2, 3, 5)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3))
    assert weights[0, :, 3:].abs().max() == 0


@pytest.mark.parametrize(
    "attention", ["bahdanau", "luong_general", "luong_concat", "none"]
)
@pytest.mark.parametrize("feeding", [True, False])
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("layers", [1, 2])
def test_step_by_step_equals_teacher_forcing(attention, feeding, cell, layers):
    """The search's step() computes exactly what training's forward() computes
    (also for the fused RNN of the Luong flow without input feeding)."""
    model = make(
        attention=attention, input_feeding=feeding, cell=cell, num_layers=layers
    )
    src, lengths, tgt = batch()
    with torch.no_grad():
        full = model.output(model(src, lengths, tgt))  # (N, T, V) logits
        state = model.init_state((src, lengths), 1)
        for t in range(tgt.size(1)):
            logits, state = model.step(tgt[:, t], state)
            torch.testing.assert_close(logits, full[:, t], atol=1e-5, rtol=1e-4)


def test_init_state_tiles_rows_not_memory():
    model = make()
    src, lengths, _ = batch()
    state = model.init_state((src, lengths), 2)
    assert state.hidden.shape[0] == 6 and state.width == 2
    assert state.keys.shape[0] == 3  # memory and keys are stored once per sentence
    assert state.memory.shape[:2] == (3, src.size(1))
    torch.testing.assert_close(state.hidden[0], state.hidden[1])


@pytest.mark.parametrize("attention", ["bahdanau", "luong_general", "none"])
def test_a_sentence_leaving_the_search_takes_its_memory(attention):
    model = make(attention=attention)
    src, lengths, tgt = batch()
    with torch.no_grad():
        state = model.init_state((src, lengths), 1)
        dropped = model.reorder(state, torch.tensor([2, 0]))  # sentence 1 finished
        assert dropped.memory.shape[:2] == (2, src.size(1))
        assert (dropped.keys is None) == (attention == "none")
        full = model.output(model(src, lengths, tgt))  # (N, T, V)
        logits, _ = model.step(tgt[[2, 0], 0], dropped)
    torch.testing.assert_close(logits, full[[2, 0], 0], atol=1e-5, rtol=1e-4)


def test_tied_and_shared_embeddings():
    model = make(tie_output=True, share_embeddings=True)
    assert model.output.weight is model.decoder.embedding.weight
    assert model.encoder.embedding is model.decoder.embedding


def test_default_shape_matches_joeynmt_size():
    from nmt.models.seq2seq import ModelConfig

    params = Seq2Seq(ModelConfig(), src_vocab=8000, tgt_vocab=8000).num_parameters()
    assert 14_000_000 < params < 17_000_000


def test_reorder_moves_rows_and_drops_sentences():
    model = make()
    src, lengths, _ = batch()
    state = model.init_state((src, lengths), 2)
    swapped = model.reorder(state, torch.tensor([1, 0, 2, 2, 5, 4]))
    assert swapped.keys is state.keys  # beams moved inside their sentences
    torch.testing.assert_close(swapped.hidden, state.hidden[[1, 0, 2, 2, 5, 4]])
    dropped = model.reorder(state, torch.tensor([5, 4]))  # sentences 0 and 1 finished
    torch.testing.assert_close(dropped.keys, state.keys[[2]])
    torch.testing.assert_close(dropped.memory, state.memory[[2]])
    torch.testing.assert_close(dropped.mask, state.mask[[2]])
    torch.testing.assert_close(dropped.hidden, state.hidden[[5, 4]])


def test_reorder_widens_one_row_per_sentence_to_beams():
    """The search's first step has one row per sentence; reorder widens it to B."""
    model = make()
    src, lengths, _ = batch()  # 3 sentences
    state = model.init_state((src, lengths), 1)
    wide = model.reorder(state, torch.tensor([0, 0, 1, 1, 2, 2]))
    assert wide.keys is state.keys and wide.width == 2
    torch.testing.assert_close(wide.hidden, state.hidden[[0, 0, 1, 1, 2, 2]])
    # widening while sentence 1 finishes: 2 sentences x 3 rows, as many rows as before
    both = model.reorder(state, torch.tensor([0, 0, 0, 2, 2, 2]))
    assert both.width == 3
    torch.testing.assert_close(both.memory, state.memory[[0, 2]])
    torch.testing.assert_close(both.keys, state.keys[[0, 2]])


def test_beam_rows_attend_like_separate_sentences():
    """W beams scored as W queries of one sentence == the sentence tiled W times."""
    model = make(attention="bahdanau")
    src, lengths, _ = batch()
    tokens = torch.tensor([5, 6, 7, 8, 9, 10])
    with torch.no_grad():
        grouped = model.init_state((src, lengths), 2)
        tiled = model.init_state(
            (src.repeat_interleave(2, 0), lengths.repeat_interleave(2)), 1
        )
        torch.testing.assert_close(grouped.hidden, tiled.hidden)
        for _ in range(3):
            a, grouped = model.step(tokens, grouped)
            b, tiled = model.step(tokens, tiled)
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(grouped.attn, tiled.attn, atol=1e-6, rtol=1e-5)
            tokens = a.argmax(-1)


@pytest.mark.parametrize("beam_size", [1, 3])
def test_search_on_seq2seq_alone_equals_in_batch(beam_size):
    from nmt.search import BeamConfig, beam_search

    model = make(attention="bahdanau")
    src, lengths, _ = batch()
    cfg = BeamConfig(beam_size=beam_size, nbest=beam_size, max_len_a=1.0, max_len_b=4)
    together = beam_search(model, (src, lengths), lengths, cfg)
    for i in range(3):
        n = int(lengths[i])
        alone = beam_search(
            model, (src[i : i + 1, :n], lengths[i : i + 1]), lengths[i : i + 1], cfg
        )[0]
        assert [h.tokens for h in alone] == [h.tokens for h in together[i]]
        for a, b in zip(alone, together[i]):
            assert abs(a.score - b.score) < 1e-4
            assert a.attention.shape == (len(a.tokens), n)


def test_width_one_is_argmax_on_seq2seq():
    from nmt.search import BeamConfig, beam_search

    model = make()
    src, lengths, _ = batch()
    cfg = BeamConfig(beam_size=1, len_penalty=0.0, max_len_a=0.0, max_len_b=6)
    hyps = beam_search(model, (src, lengths), lengths, cfg)
    with torch.no_grad():
        state = model.init_state((src, lengths), 1)
        tokens = torch.full((3,), model.bos_id)
        expected = [[] for _ in range(3)]
        done = [False] * 3
        for _ in range(6):
            log_probs, state = model.step(tokens, state)
            log_probs[:, [model.pad_id, model.bos_id]] = float("-inf")
            tokens = log_probs.argmax(-1)
            for i, t in enumerate(tokens.tolist()):
                if not done[i]:
                    done[i] = t == model.eos_id
                    if not done[i]:
                        expected[i].append(t)
    assert [list(h[0].tokens) for h in hyps] == expected


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float64])
def test_a_model_cast_to_another_dtype_still_trains(dtype):
    model = make(cell="gru").to(dtype).train()
    src, lengths, tgt = batch()
    assert model.encoder(src, lengths).memory.dtype == dtype
    assert torch.isfinite(model.loss(src, lengths, tgt, tgt))  # float32 by design


def test_elman_decoder_takes_the_configured_nonlinearity():
    model = make(cell="rnn", nonlinearity="relu")
    assert model.encoder.rnn.nonlinearity == "relu"
    assert model.decoder.rnn.nonlinearity == "relu"
