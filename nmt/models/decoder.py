"""Attentional RNN decoder: one-step `step()` and teacher-forced `forward()`.

Two flows (Bahdanau et al. 2015 vs Luong et al. 2015):
- `bahdanau`: context from the previous state feeds the RNN; readout from [h; c; e].
- `luong_*` / `none`: RNN first, then attention on its output; readout
  h~ = tanh(W [h; c]) is fed to the next step's input when `input_feeding`.
  Without input feeding the RNN runs fused over the whole target (fast path).

Shapes: N rows, T target steps, S source length, E embedding, H hidden, L layers,
M memory size, K key size, R readout size, V vocabulary.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from nmt.models.attention import build_attention
from nmt.models.encoder import make_rnn
from nmt.models.int8 import Int8Linear
from nmt.models.packed import (
    PackedLinear,
    SearchCaches,
    compute_dtype,
    frozen_linear,
    weights_key,
)


class DecoderState(NamedTuple):
    """Batch-first decoder state of N*W rows: W hypotheses (beams) per sentence.

    Per row: hidden (N*W, L, H) — for LSTM (N*W, L, 2H) hidden ++ cell; feed
    (N*W, R) previous readout (input feeding) or (N*W, 0); attn (N*W, S) last
    attention weights ((N*W, 0) without attention). Per sentence, shared by its W
    rows (never tiled): memory (N, S, M), keys (N, S, K), mask (N, S) bool, and
    for a search values (N, S, G) from `RNNDecoder.project_memory` and prepared
    (N, S, ·) from `Attention.prepare` ((N, S, 0) when not used); with values
    the memory is not read and a search holds it as (N, S, 0).
    The W beams of a sentence attend as W queries of one attention call.
    """

    hidden: Tensor
    feed: Tensor
    attn: Tensor
    memory: Tensor
    keys: Tensor
    mask: Tensor
    values: Tensor
    prepared: Tensor

    @property
    def width(self) -> int:
        return self.hidden.size(0) // max(1, self.memory.size(0))


def _tanh(x: Tensor) -> Tensor:
    """tanh(x) as 2 sigmoid(2x) - 1: equal to ~1e-7, and on CPU float32 sigmoid is
    ~4x faster than tanh ((320, 512): 0.08 vs 0.30 ms). Autograd-safe."""
    return torch.sigmoid(x * 2.0).mul(2.0).sub_(1.0)


class _StepWeights(NamedTuple):
    """Weight pieces of `RNNDecoder._step_projected` (G0 layer-0 gates, G the top
    layer's, Q the projected query's size)."""

    emb_in: Tensor  # (G0, E) layer 0's embedding columns ((0, E) for Luong)
    read: Tensor  # (R, H [+ E]) readout columns for [h; e] (no e with the table)
    # (V, G0 + R) float32 [E W_emb^T + b_ih, E W_read_e^T]: the embedding's share
    # of layer 0's gates and of the readout per token, the values' layout; or None
    emb_table: Tensor | None
    # Bahdanau flow in a search: the top layer's W_hh stacked on the attention's
    # query weight, both applied to the previous top hidden state in one product
    hh_query: Tensor | None  # (G + Q, H), or None
    hh_query_bias: Tensor | None  # (G + Q,) b_hh and zeros, or None
    # frozen copies of [hh_query; bias] and of [read; readout bias] for a search on a
    # CPU: int8 (`int8`, float32 out) or oneDNN-packed in the step's dtype; or None
    hh_query_fast: Int8Linear | PackedLinear | None = None
    read_fast: Int8Linear | PackedLinear | None = None


class RNNDecoder(SearchCaches):
    """Embedding -> RNN (+attention) -> readout features (N, T, R)."""

    CACHES = ("_cached", "_values_map")

    def __init__(
        self,
        *,
        embedding: nn.Embedding,
        cell: str,
        hidden_size: int,
        num_layers: int,
        dropout: float,
        attention: str,
        memory_size: int,
        attn_size: int,
        input_feeding: bool,
        readout_size: int,
        nonlinearity: str = "tanh",
    ) -> None:
        super().__init__()
        embed = embedding.embedding_dim
        self.embedding = embedding
        self.dropout = nn.Dropout(dropout)
        self.attention = build_attention(
            attention,
            query_size=hidden_size,
            memory_size=memory_size,
            attn_size=attn_size,
        )
        self.before = attention == "bahdanau"
        self.feeds = input_feeding and not self.before
        context = memory_size if self.attention is not None else 0
        rnn_in = (
            embed
            + (context if self.before else 0)
            + (readout_size if self.feeds else 0)
        )
        self.rnn = make_rnn(
            cell,
            input_size=rnn_in,
            hidden_size=hidden_size,
            num_layers=num_layers,
            dropout=dropout,
            nonlinearity=nonlinearity,
        )
        self.is_lstm = cell == "lstm"
        self.readout = nn.Linear(
            hidden_size + context + (embed if self.before else 0), readout_size
        )
        self.readout_size = readout_size
        self.embed_size, self.context_size = embed, context
        self._cached: tuple[tuple, _StepWeights] | None = None
        self._values_map: tuple[tuple, PackedLinear | Tensor] | None = None
        self.int8 = False  # searches: int8 copies of hh_query and the readout's h part

    # -- RNN state plumbing: batch-first (N, L, H*) outside, (L, N, H) at the call
    def _to_rnn(self, hidden: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        hidden = hidden.transpose(0, 1).contiguous()  # (L, N, H*)
        if self.is_lstm:
            h, c = hidden.chunk(2, dim=-1)
            return h.contiguous(), c.contiguous()
        return hidden

    def _from_rnn(self, state: Tensor | tuple[Tensor, Tensor]) -> Tensor:
        if self.is_lstm:
            state = torch.cat(state, dim=-1)
        return state.transpose(0, 1)  # (N, L, H*)

    def _top(self, hidden: Tensor) -> Tensor:
        top = hidden[:, -1]  # (N, H*)
        return top[..., : self.rnn.hidden_size]

    def _read(self, h: Tensor, context: Tensor | None, emb: Tensor) -> Tensor:
        parts = (
            [h]
            + ([context] if context is not None else [])
            + ([emb] if self.before else [])
        )
        return torch.tanh(self.readout(torch.cat(parts, dim=-1)))

    def _attend(
        self, query: Tensor, state: DecoderState
    ) -> tuple[Tensor | None, Tensor]:
        """query (N*W, T, H) -> context (N*W, T, M), weights (N*W, T, S).

        With W > 1 (beams) T is 1 and the W rows of a sentence are scored as
        W queries against its memory, which is stored once per sentence.
        """
        if self.attention is None:
            return None, state.attn[:, None]
        rows, steps, _ = query.shape
        sentences = state.memory.size(0)
        grouped = query.reshape(sentences, -1, query.size(-1))  # (N, W*T, H)
        context, weights = self.attention(grouped, state.keys, state.memory, state.mask)
        context = context.reshape(rows, steps, -1)  # (N*W, T, M)
        return context, weights.reshape(rows, steps, -1)  # (N*W, T, S)

    def _luong_input(self, emb: Tensor, state: DecoderState) -> Tensor:
        """RNN input of the Luong flow: emb (N, 1, E) [++ previous readout] (N, 1, E*)."""
        if not self.feeds:
            return emb
        return torch.cat([emb, state.feed[:, None].to(emb.dtype)], dim=-1)

    def step(self, tokens: Tensor, state: DecoderState) -> tuple[Tensor, DecoderState]:
        """One decoding step.

        Args:
            tokens: (N,) previous target ids.
            state: the DecoderState before this step.

        Returns:
            readout features (N, R) and the new state.
        """
        if state.values.size(-1) > 0:
            return self._step_projected(tokens, state)
        emb = self.dropout(self.embedding(tokens))[:, None]  # (N, 1, E)
        if self.before:
            query = self._top(state.hidden)[:, None]  # (N, 1, H)
            context, weights = self._attend(query, state)
            x = torch.cat([emb, context.to(emb.dtype)], dim=-1)
        else:
            x = self._luong_input(emb, state)
        out, rnn_state = self.rnn(x, self._to_rnn(state.hidden))  # out (N, 1, H)
        if not self.before:
            context, weights = self._attend(out, state)
        feats = self._read(out, context, emb)  # (N, 1, R)
        feats = self.dropout(feats[:, 0])  # (N, R)
        new = state._replace(
            hidden=self._from_rnn(rnn_state),
            feed=feats if self.feeds else state.feed,
            attn=weights[:, -1],
        )
        return feats, new

    # -- steps with projected memory (search): the context enters the RNN input
    # (Bahdanau) and the readout only through linear maps, so W c = sum_s a_s (W m_s):
    # W m_s is computed once per sentence and each step mixes it with its weights
    # a_s, instead of multiplying every row's context by W (M x G per row).
    def project_memory(self, memory: Tensor) -> Tensor:
        """memory (N, S, M) -> values (N, S, G): the context's columns of layer 0's
        input weights (Bahdanau flow only) then of the readout, applied to memory."""
        if self.attention is None:
            return memory[:, :, :0]
        e, h, m = self.embed_size, self.rnn.hidden_size, self.context_size
        parts = [self.rnn.weight_ih_l0[:, e : e + m]] if self.before else []
        parts.append(self.readout.weight[:, h : h + m])
        if torch.is_grad_enabled():
            return nn.functional.linear(memory, torch.cat(parts))
        # a search: the (G, M) map concatenated and packed once, not at every batch
        dtype = compute_dtype(memory.device, parts[0].dtype)
        key = (*weights_key(parts), dtype, memory.device)
        cached = self._values_map  # one read: another decoding thread may replace it
        if cached is None or cached[0] != key:
            weight = torch.cat(parts)  # (G, M)
            packed = frozen_linear(weight, None, memory.device, dtype, int8=False)
            cached = (key, packed if packed is not None else weight.to(dtype))
            self._values_map = cached
        n, s, _ = memory.shape
        if isinstance(cached[1], PackedLinear):
            return cached[1](memory.reshape(n * s, m)).reshape(n, s, -1)
        return nn.functional.linear(memory, cached[1])

    def _step_weights(self, device: torch.device) -> _StepWeights:
        """The step's pieces of layer 0's input weights and of the readout, cast to
        the autocast dtype; cached while the parameters are unchanged and no
        gradient is needed. Without gradients and dropout (a search), the target
        embedding's share of both (Bahdanau flow) comes as per-token tables, and
        the top layer's W_hh and the attention's query weight as one matrix."""
        top = self.rnn.num_layers - 1
        params = (
            self.rnn.weight_ih_l0,
            self.rnn.bias_ih_l0,
            self.readout.weight,
            self.embedding.weight,
            getattr(self.rnn, f"weight_hh_l{top}"),
            getattr(self.rnn, f"bias_hh_l{top}"),
            self.readout.bias,
            *(self.attention.parameters() if self.attention is not None else ()),
        )
        kind = device.type
        dtype = compute_dtype(device, params[0].dtype)
        tabled = self.before and not self.training and not torch.is_grad_enabled()
        int8 = self.int8 and tabled
        key = (*weights_key(params), dtype, tabled, int8)
        cached = self._cached  # one read: another decoding thread may replace it
        if cached is not None and cached[0] == key:
            return cached[1]
        e, h, m = self.embed_size, self.rnn.hidden_size, self.context_size
        w_ih, b_ih, w_read, table, w_hh, b_hh, read_bias = params[:7]
        emb_in = w_ih[:, :e] if self.before else w_ih[:, :0]
        emb_read = w_read[:, h + m :] if self.before else w_read[:, :0]
        read = [w_read[:, :h]] + ([] if tabled else [emb_read])
        pieces = _StepWeights(
            emb_in.to(dtype).contiguous(),
            torch.cat(read, 1).to(dtype),
            *(None,) * 3,
        )
        if tabled:  # (V, G0 + R) float32: E[token] W^T (+ b), looked up
            linear, table = nn.functional.linear, table.float()
            with torch.autocast(kind, enabled=False):
                gates = linear(table, emb_in.float(), b_ih.float())  # (V, G0)
                read_share = linear(table, emb_read.float())  # (V, R)
                pieces = pieces._replace(
                    emb_table=torch.cat([gates, read_share], 1).contiguous()
                )
            query = self.attention.query_weight()  # (Q, H) or None
            if query is not None:
                stacked = torch.cat([w_hh, query])  # (G + Q, H)
                bias = torch.cat([b_hh, b_hh.new_zeros(len(query))])  # (G + Q,)
                pieces = pieces._replace(
                    hh_query=stacked.to(dtype),
                    hh_query_bias=bias.to(dtype),
                    hh_query_fast=frozen_linear(
                        stacked, bias, device, dtype, int8=int8
                    ),
                    read_fast=frozen_linear(
                        w_read[:, :h], read_bias, device, dtype, int8=int8
                    ),
                )
        if not torch.is_grad_enabled():
            self._cached = (key, pieces)
        return pieces

    def _cell(
        self,
        layer: int,
        gates_in: Tensor,
        hidden: Tensor,
        gates_h: Tensor | None = None,
    ) -> Tensor:
        """One RNN cell step of `layer`: input gates (N, G) already computed, the
        hidden state's (N, G) too when given; hidden (N, H*) -> (N, H*); float32
        inside, as PyTorch's cells (tanh as `_tanh`)."""
        rnn = self.rnn
        h_size = rnn.hidden_size
        h = hidden[:, :h_size]
        if gates_h is None:
            w_hh = getattr(rnn, f"weight_hh_l{layer}")
            gates_h = nn.functional.linear(h, w_hh, getattr(rnn, f"bias_hh_l{layer}"))
        gates_h = gates_h.float()  # (N, G)
        gates_in = gates_in.float()
        h = h.float()
        if isinstance(rnn, nn.GRU):
            i_r, i_z, i_n = gates_in.chunk(3, dim=1)
            h_r, h_z, h_n = gates_h.chunk(3, dim=1)
            r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
            n = _tanh(i_n + r * h_n)
            return n + z * (h - n)
        if isinstance(rnn, nn.LSTM):
            i, f, g, o = (gates_in + gates_h).chunk(4, dim=1)
            c = torch.sigmoid(f) * hidden[:, h_size:].float()
            c = c + torch.sigmoid(i) * _tanh(g)
            return torch.cat([torch.sigmoid(o) * _tanh(c), c], dim=1)
        pre = gates_in + gates_h
        return torch.relu(pre) if rnn.nonlinearity == "relu" else _tanh(pre)

    def _step_projected(
        self, tokens: Tensor, state: DecoderState
    ) -> tuple[Tensor, DecoderState]:
        """`step` with state.values from `project_memory`; same result."""
        pieces = self._step_weights(tokens.device)
        w_emb, w_read = pieces.emb_in, pieces.read
        linear = nn.functional.linear
        tabled = pieces.emb_table is not None  # the embedding's share by lookup
        emb = None if tabled else self.dropout(self.embedding(tokens))  # (N, E)
        if self.before:
            top = self.rnn.num_layers - 1
            query = self._top(state.hidden)  # (N, H)
            top_gates = None  # (N, G) the top layer's W_hh h + b_hh, fused
            if pieces.hh_query is not None:
                both = (  # (N, G + Q)
                    pieces.hh_query_fast(query)
                    if pieces.hh_query_fast is not None
                    else linear(query, pieces.hh_query, pieces.hh_query_bias)
                )
                g = self.rnn.weight_hh_l0.size(0)
                top_gates, projected = both[:, :g], both[:, g:]
            else:
                projected = self.attention.project_query(query)
            # (N, G0 + R): with the table, its rows of `tokens` are already added
            index = tokens if tabled else None
            weights, mixed = self._mix(projected, state, pieces.emb_table, index)
            gate_size = w_emb.size(0)
            x = (  # (N, G0)
                mixed[:, :gate_size]
                if tabled
                else linear(emb, w_emb, self.rnn.bias_ih_l0) + mixed[:, :gate_size]
            )
            layers = []
            for layer in range(self.rnn.num_layers):
                if layer > 0:
                    x = nn.functional.dropout(
                        layers[-1][:, : self.rnn.hidden_size],
                        self.rnn.dropout,
                        self.training,
                    )
                    x = linear(
                        x,
                        getattr(self.rnn, f"weight_ih_l{layer}"),
                        getattr(self.rnn, f"bias_ih_l{layer}"),
                    )
                fused = top_gates if layer == top else None
                layers.append(self._cell(layer, x, state.hidden[:, layer], fused))
            hidden = torch.stack(layers, dim=1)  # (N, L, H*)
            out = self._top(hidden)  # (N, H)
            mixed = mixed[:, gate_size:]  # (N, R) the readout's share
            read_in = (  # (N, H [+ E])
                out if tabled else torch.cat([out, emb.to(out.dtype)], 1)
            )
        else:
            x = self._luong_input(emb[:, None], state)  # (N, 1, E*)
            out, rnn_state = self.rnn(x, self._to_rnn(state.hidden))  # (N, 1, H)
            hidden, out = self._from_rnn(rnn_state), out[:, 0]
            weights, mixed = self._mix(self.attention.project_query(out), state)
            read_in = out
        read = (  # (N, R)
            pieces.read_fast(read_in)
            if pieces.read_fast is not None
            else linear(read_in, w_read, self.readout.bias)
        )
        feats = _tanh(read + mixed.to(read_in.dtype))
        feats = self.dropout(feats)  # (N, R)
        new = state._replace(
            hidden=hidden, feed=feats if self.feeds else state.feed, attn=weights
        )
        return feats, new

    def _mix(
        self,
        projected: Tensor,
        state: DecoderState,
        offsets: Tensor | None = None,
        index: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Projected queries (N*W, Q) (`Attention.project_query`) -> weights
        (N*W, S) and their mix of values (N*W, G), plus rows index (N*W,) of
        the (V, G) float32 offsets when given."""
        rows = projected.size(0)
        sentences = state.keys.size(0)
        grouped = projected.reshape(sentences, -1, projected.size(-1))  # (N, W, Q)
        weights, mixed = self.attention.prepared_mix(  # (N, W, S), (N, W, G)
            grouped,
            state.keys,
            state.prepared,
            state.mask,
            state.values,
            offsets,
            index,
        )
        return weights.reshape(rows, -1), mixed.reshape(rows, -1)

    def forward(self, tgt_in: Tensor, state: DecoderState) -> Tensor:
        """Teacher-forced decoding of tgt_in (N, T) -> readout features (N, T, R)."""
        if self.before or self.feeds:
            feats = []
            for t in range(tgt_in.size(1)):
                f, state = self.step(tgt_in[:, t], state)
                feats.append(f)
            return torch.stack(feats, dim=1)
        emb = self.dropout(self.embedding(tgt_in))  # (N, T, E)
        out, _ = self.rnn(emb, self._to_rnn(state.hidden))  # (N, T, H)
        context, _ = self._attend(out, state)
        return self.dropout(self._read(out, context, emb))
