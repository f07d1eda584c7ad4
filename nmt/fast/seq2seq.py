"""`FastSeq2Seq`: a `Seq2Seq` decoded through frozen, precomputed weights (CPU search).

The same model and the same numbers as `Seq2Seq.step` (up to float rounding;
tests hold the two together), computed with less work per step:
- the context enters the RNN input (Bahdanau flow) and the readout only through
  linear maps, so W c = sum_s a_s (W m_s): the values W m_s are computed once per
  sentence (`init_state`) and each step mixes them with its attention weights;
- the target embedding's share of layer 0's gates and of the readout is a per-token
  table (Bahdanau flow), looked up instead of multiplied;
- the top layer's W_hh and the attention's query weight run as one matrix product;
- linear maps are oneDNN-packed (or int8) copies (`nmt.fast.linear`), the encoder
  RNN a bf16 copy under bf16, tanh is 2 sigmoid(2x) - 1 (faster on CPUs), and the
  attention is `nmt.fast.attention`.

Shapes: N sentences, W rows (beams) per sentence, S source length, E embedding,
H hidden, L layers, G0 layer 0's gates, G the top layer's, Q projected query,
R readout, V vocabulary, H* = H (2H for LSTM).
"""

from __future__ import annotations

import copy
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from nmt.fast import attention as fast_attention
from nmt.fast.linear import PlainLinear, frozen_linear
from nmt.models.rnn import from_rnn, to_rnn
from nmt.models.seq2seq import PER_ROW, Seq2Seq, reorder_state
from nmt.utils.runtime import bf16_supported


class FastState(NamedTuple):
    """Search state: per row hidden (N*W, L, H*), feed (N*W, R) or None, attn
    (N*W, S); per sentence keys (N, S, K), mask (N, S), values (N, S, G0 + R) or
    (N, S, R) (`FastSeq2Seq.values`), prepared (N, S, A) or None
    (`nmt.fast.attention.prepare`)."""

    hidden: Tensor
    feed: Tensor | None
    attn: Tensor
    keys: Tensor
    mask: Tensor
    values: Tensor
    prepared: Tensor | None

    @property
    def width(self) -> int:
        return self.hidden.size(0) // max(1, self.mask.size(0))


def sigmoid_tanh(x: Tensor) -> Tensor:
    """tanh(x) as 2 sigmoid(2x) - 1: equal to ~1e-7, and faster on CPUs."""
    return torch.sigmoid(x * 2.0).mul(2.0).sub_(1.0)


class FastSeq2Seq:
    """A `Stepper` over a Seq2Seq with attention, for searches on a CPU.

    Built from the model's current weights (it does not follow later changes) in
    `dtype`, the dtype the search's linear maps run in (bf16 under bf16 autocast);
    `int8` uses int8 copies of the per-row linear maps (output layer, the stacked
    W_hh/query map, the readout).
    """

    def __init__(self, model: Seq2Seq, *, dtype: torch.dtype, int8: bool) -> None:
        dec = model.decoder
        if dec.attention is None:
            raise ValueError("FastSeq2Seq needs a model with attention")
        self.model, self.decoder, self.attention_module = model, dec, dec.attention
        self.pad_id, self.bos_id, self.eos_id = model.pad_id, model.bos_id, model.eos_id
        e, h = dec.embedding.embedding_dim, dec.rnn.hidden_size
        m = model.encoder.output_size
        w_ih, w_read = dec.rnn.weight_ih_l0, dec.readout.weight
        with torch.no_grad():
            output = model.output
            self.output = frozen_linear(output.weight, output.bias, dtype, int8=int8)
            # the context's columns of layer 0's input (Bahdanau) and of the readout
            parts = [w_ih[:, e : e + m]] if dec.before else []
            values = torch.cat([*parts, w_read[:, h : h + m]])  # (G0 + R, M) | (R, M)
            self.values_map = frozen_linear(values, None, dtype)
            self.encoder_rnn = None  # the encoder's own
            # oneDNN's bf16 RNNs need a CPU with native bf16 (not emulated)
            if dtype == torch.bfloat16 and bf16_supported(w_ih.device):
                self.encoder_rnn = copy.deepcopy(model.encoder.rnn).to(dtype)
            if dec.before:
                self._bahdanau_weights(dtype, int8)
            else:  # F.linear, as the reference runs it
                self.read = PlainLinear(w_read[:, :h], dec.readout.bias, dtype)

    def _bahdanau_weights(self, dtype: torch.dtype, int8: bool) -> None:
        dec = self.decoder
        e, h = dec.embedding.embedding_dim, dec.rnn.hidden_size
        m = self.model.encoder.output_size
        rnn, w_read = dec.rnn, dec.readout.weight
        top = rnn.num_layers - 1
        table = dec.embedding.weight.float()  # (V, E)
        with torch.autocast(table.device.type, enabled=False):
            # (V, G0 + R) float32: E[token] W^T (+ b), the values' layout
            gates = F.linear(table, rnn.weight_ih_l0[:, :e].float(), rnn.bias_ih_l0)
            read_share = F.linear(table, w_read[:, h + m :].float())
            self.emb_table = torch.cat([gates.float(), read_share], 1).contiguous()
        self.gate_size = rnn.weight_ih_l0.size(0)  # G0
        query = fast_attention.query_weight(self.attention_module)  # (Q, H)
        w_hh, b_hh = getattr(rnn, f"weight_hh_l{top}"), getattr(rnn, f"bias_hh_l{top}")
        stacked = torch.cat([w_hh, query])  # (G + Q, H)
        bias = torch.cat([b_hh, b_hh.new_zeros(len(query))])  # (G + Q,)
        self.hh_query = frozen_linear(stacked, bias, dtype, int8=int8)
        self.read = frozen_linear(w_read[:, :h], dec.readout.bias, dtype, int8=int8)

    # -- search protocol -----------------------------------------------------------
    def init_state(self, inputs: tuple[Tensor, Tensor], width: int) -> FastState:
        """inputs = (src (N, S), src_lengths (N,)) -> state with N*width rows."""
        src, src_lengths = inputs
        model, dec, attention = self.model, self.decoder, self.attention_module
        enc = model.encoder(src, src_lengths, self.encoder_rnn)
        keys = fast_attention.project_keys(attention, enc.memory)  # (N, S, K)
        n, s, m = enc.memory.shape
        values = self.values_map(enc.memory.reshape(n * s, m)).reshape(n, s, -1)
        feed = enc.memory.new_zeros(n * width, dec.readout_size) if dec.feeds else None
        return FastState(
            hidden=model.start_hidden(enc).repeat_interleave(width, dim=0),
            feed=feed,
            attn=enc.memory.new_zeros(n * width, s),
            keys=keys,
            mask=enc.mask,
            values=values,
            prepared=fast_attention.prepare(attention, keys),
        )

    def step(self, tokens: Tensor, state: FastState) -> tuple[Tensor, FastState]:
        """tokens (N*W,) -> logits (N*W, V) and the new state."""
        if self.decoder.before:
            feats, state = self._bahdanau_step(tokens, state)
        else:
            feats, state = self._luong_step(tokens, state)
        return self.output(feats), state

    def reorder(self, state: FastState, index: Tensor) -> FastState:
        """Keep rows `index` (N'*W',) of the state, as `Seq2Seq.reorder`."""
        return reorder_state(state, PER_ROW, index)

    def attention(self, state: FastState) -> Tensor:
        return state.attn

    # -- steps ------------------------------------------------------------------------
    def _mix(
        self,
        projected: Tensor,
        state: FastState,
        offsets: Tensor | None = None,
        index: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Projected queries (N*W, Q) -> weights (N*W, S) and their mix of the
        values (N*W, G), plus rows `index` of `offsets` when given."""
        rows, sentences = projected.size(0), state.mask.size(0)
        grouped = projected.reshape(sentences, -1, projected.size(-1))  # (N, W, Q)
        weights, mixed = fast_attention.mix(
            self.attention_module,
            grouped,
            state.keys,
            state.prepared,
            state.mask,
            state.values,
            offsets,
            index,
        )
        return weights.reshape(rows, -1), mixed.reshape(rows, -1)

    def _bahdanau_step(
        self, tokens: Tensor, state: FastState
    ) -> tuple[Tensor, FastState]:
        rnn = self.decoder.rnn
        top = rnn.num_layers - 1
        both = self.hh_query(self.decoder.top(state.hidden))  # (N*W, G + Q)
        g = rnn.weight_hh_l0.size(0)
        top_gates, projected = both[:, :g], both[:, g:]
        # (N*W, G0 + R): the context's share plus the token's table row
        weights, mixed = self._mix(projected, state, self.emb_table, tokens)
        x = mixed[:, : self.gate_size]  # (N*W, G0)
        layers = []
        for layer in range(rnn.num_layers):
            if layer > 0:
                below = layers[-1][:, : rnn.hidden_size]
                w_ih = getattr(rnn, f"weight_ih_l{layer}")
                x = F.linear(below, w_ih, getattr(rnn, f"bias_ih_l{layer}"))
            gates_h = top_gates if layer == top else None
            layers.append(self._cell(layer, x, state.hidden[:, layer], gates_h))
        hidden = torch.stack(layers, dim=1)  # (N*W, L, H*)
        out = self.decoder.top(hidden)  # (N*W, H)
        read = self.read(out)  # (N*W, R)
        feats = sigmoid_tanh(read + mixed[:, self.gate_size :].to(out.dtype))
        return feats, state._replace(hidden=hidden, attn=weights)

    def _luong_step(self, tokens: Tensor, state: FastState) -> tuple[Tensor, FastState]:
        dec = self.decoder
        x = dec.embedding(tokens)[:, None]  # (N*W, 1, E)
        if state.feed is not None:
            x = torch.cat([x, state.feed[:, None].to(x.dtype)], dim=-1)
        out, rnn_state = dec.rnn(x, to_rnn(state.hidden, dec.is_lstm))  # (N*W, 1, H)
        hidden, out = from_rnn(rnn_state, dec.is_lstm), out[:, 0]
        projected = fast_attention.project_query(self.attention_module, out)
        weights, mixed = self._mix(projected, state)  # (N*W, S), (N*W, R)
        feats = sigmoid_tanh(self.read(out) + mixed.to(out.dtype))
        new = state._replace(
            hidden=hidden, feed=None if state.feed is None else feats, attn=weights
        )
        return feats, new

    def _cell(
        self, layer: int, gates_in: Tensor, hidden: Tensor, gates_h: Tensor | None
    ) -> Tensor:
        """One RNN cell step of `layer`: input gates (N, G) computed, the hidden
        state's (N, G) too when given; hidden (N, H*) -> (N, H*); float32 inside,
        as PyTorch's cells."""
        rnn = self.decoder.rnn
        size = rnn.hidden_size
        h = hidden[:, :size]
        if gates_h is None:
            w_hh = getattr(rnn, f"weight_hh_l{layer}")
            gates_h = F.linear(h, w_hh, getattr(rnn, f"bias_hh_l{layer}"))
        gates_h, gates_in, h = gates_h.float(), gates_in.float(), h.float()  # (N, G)
        if isinstance(rnn, nn.GRU):
            i_r, i_z, i_n = gates_in.chunk(3, dim=1)
            h_r, h_z, h_n = gates_h.chunk(3, dim=1)
            r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
            n = sigmoid_tanh(i_n + r * h_n)
            return n + z * (h - n)
        if isinstance(rnn, nn.LSTM):
            i, f, g, o = (gates_in + gates_h).chunk(4, dim=1)
            c = torch.sigmoid(f) * hidden[:, size:].float()
            c = c + torch.sigmoid(i) * sigmoid_tanh(g)
            return torch.cat([torch.sigmoid(o) * sigmoid_tanh(c), c], dim=1)
        pre = gates_in + gates_h
        return torch.relu(pre) if rnn.nonlinearity == "relu" else sigmoid_tanh(pre)
