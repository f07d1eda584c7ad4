"""Attentional RNN decoder: one `step`, used by teacher forcing and by the search.

Two flows (Bahdanau et al. 2015 vs Luong et al. 2015):
- `bahdanau`: attention on the previous state; the context feeds the RNN with the
  embedding; readout t = tanh(W [h; c; e]).
- `luong_*` / `none`: RNN first, then attention on its output; readout
  h~ = tanh(W [h; c]), fed to the next step's input when `input_feeding`.
  Without input feeding teacher forcing runs the RNN fused over the whole target.

Shapes: N rows, T target steps, S source length, E embedding, H hidden, L layers,
M memory size, K key size, R readout size, H* = H (2H for LSTM: hidden ++ cell).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from nmt.models.attention import build_attention
from nmt.models.rnn import from_rnn, make_rnn, to_rnn


class DecoderState(NamedTuple):
    """Batch-first decoder state of N*W rows: W hypotheses (beams) per sentence.

    Per row: hidden (N*W, L, H*); feed (N*W, R) the previous readout (input
    feeding, else None); attn (N*W, S) the last attention weights (None without
    attention). Per sentence, shared by its W rows (never tiled): memory
    (N, S, M), keys (N, S, K) (None without attention), mask (N, S) bool. The W
    rows of a sentence attend as W queries of one attention call.
    """

    hidden: Tensor
    feed: Tensor | None
    attn: Tensor | None
    memory: Tensor
    keys: Tensor | None
    mask: Tensor

    @property
    def width(self) -> int:
        return self.hidden.size(0) // max(1, self.mask.size(0))


class RNNDecoder(nn.Module):
    """Embedding -> RNN (+ attention) -> readout features (N, T, R)."""

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
        self.before = attention == "bahdanau"  # attend before the RNN
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
        # readout input [h; c] (Luong), [h; c; e] (Bahdanau)
        self.readout = nn.Linear(
            hidden_size + context + (embed if self.before else 0), readout_size
        )
        self.readout_size = readout_size

    def top(self, hidden: Tensor) -> Tensor:
        """The top layer's hidden state (N, H) of a state (N, L, H*)."""
        return hidden[:, -1, : self.rnn.hidden_size]

    def _read(self, h: Tensor, context: Tensor | None, emb: Tensor) -> Tensor:
        """Readout features tanh(W [h; c (; e)]) (..., R)."""
        parts = [h] + ([context] if context is not None else [])
        parts += [emb] if self.before else []
        return torch.tanh(self.readout(torch.cat(parts, dim=-1)))

    def _attend(
        self, query: Tensor, state: DecoderState
    ) -> tuple[Tensor | None, Tensor | None]:
        """query (N*W, T, H) -> context (N*W, T, M) and weights (N*W, T, S), or
        None, None without attention.

        With W > 1 (beams) T is 1 and the W rows of a sentence are scored as W
        queries against its memory, which is stored once per sentence.
        """
        if self.attention is None:
            return None, None
        rows, steps, _ = query.shape
        sentences = state.mask.size(0)
        grouped = query.reshape(sentences, -1, query.size(-1))  # (N, W*T, H)
        context, weights = self.attention(grouped, state.keys, state.memory, state.mask)
        context = context.reshape(rows, steps, -1)  # (N*W, T, M)
        return context, weights.reshape(rows, steps, -1)  # (N*W, T, S)

    def step(self, tokens: Tensor, state: DecoderState) -> tuple[Tensor, DecoderState]:
        """One decoding step.

        Args:
            tokens: (N,) previous target ids.
            state: the DecoderState before this step.

        Returns:
            readout features (N, R) and the new state.
        """
        emb = self.dropout(self.embedding(tokens))[:, None]  # (N, 1, E)
        if self.before:
            query = self.top(state.hidden)[:, None]  # (N, 1, H)
            context, weights = self._attend(query, state)
            x = torch.cat([emb, context.to(emb.dtype)], dim=-1)  # (N, 1, E + M)
        elif self.feeds:
            x = torch.cat([emb, state.feed[:, None].to(emb.dtype)], dim=-1)
        else:
            x = emb
        out, rnn_state = self.rnn(x, to_rnn(state.hidden, self.is_lstm))  # (N, 1, H)
        if not self.before:
            context, weights = self._attend(out, state)
        feats = self.dropout(self._read(out, context, emb)[:, 0])  # (N, R)
        new = state._replace(
            hidden=from_rnn(rnn_state, self.is_lstm),
            feed=feats if self.feeds else state.feed,
            attn=None if weights is None else weights[:, -1],
        )
        return feats, new

    def forward(self, tgt_in: Tensor, state: DecoderState) -> Tensor:
        """Teacher-forced decoding of tgt_in (N, T) -> readout features (N, T, R)."""
        if self.before or self.feeds:
            feats = []
            for t in range(tgt_in.size(1)):
                f, state = self.step(tgt_in[:, t], state)
                feats.append(f)
            return torch.stack(feats, dim=1)
        # no state flows from one readout to the next step: one fused RNN call
        emb = self.dropout(self.embedding(tgt_in))  # (N, T, E)
        out, _ = self.rnn(emb, to_rnn(state.hidden, self.is_lstm))  # (N, T, H)
        context, _ = self._attend(out, state)
        return self.dropout(self._read(out, context, emb))
