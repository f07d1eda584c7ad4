"""Embedding + stacked (bi)directional RNN encoder over a padded batch.

Shapes: N sentences, S source length, E embedding size, H hidden size per
direction, L layers, M memory size (2H for `concat`, else H).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from nmt.models.rnn import make_rnn

MERGE_MODES = ("concat", "sum", "mul", "ave")


def merge_directions(forward: Tensor, backward: Tensor, mode: str) -> Tensor:
    """Combine the two directions' features (..., H) -> (..., M)."""
    if mode == "concat":
        return torch.cat([forward, backward], dim=-1)
    if mode == "sum":
        return forward + backward
    if mode == "mul":
        return forward * backward
    if mode == "ave":
        return (forward + backward) / 2
    raise ValueError(f"unknown merge mode '{mode}'; choose one of {MERGE_MODES}")


class EncoderOutput(NamedTuple):
    """memory (N, S, M); mask (N, S) True at real tokens; final (N, L, M) per-layer
    last states (for LSTM: hidden and cell concatenated on the last dim, (N, L, 2M))."""

    memory: Tensor
    mask: Tensor
    final: Tensor


class RNNEncoder(nn.Module):
    """Embeds source ids and runs a fused RNN over packed sequences, so a padded
    sentence encodes exactly like the same sentence alone."""

    def __init__(
        self,
        *,
        embedding: nn.Embedding,
        cell: str,
        hidden_size: int,
        num_layers: int,
        bidirectional: bool,
        merge_mode: str,
        dropout: float,
        nonlinearity: str = "tanh",
    ) -> None:
        super().__init__()
        if merge_mode not in MERGE_MODES:
            raise ValueError(f"unknown merge mode '{merge_mode}'; choose {MERGE_MODES}")
        self.embedding = embedding
        self.dropout = nn.Dropout(dropout)
        self.rnn = make_rnn(
            cell,
            input_size=embedding.embedding_dim,
            hidden_size=hidden_size,
            num_layers=num_layers,
            dropout=dropout,
            bidirectional=bidirectional,
            nonlinearity=nonlinearity,
        )
        self.is_lstm = cell == "lstm"
        self.bidirectional = bidirectional
        self.merge_mode = merge_mode
        directions = 2 if bidirectional and merge_mode == "concat" else 1
        self.output_size = hidden_size * directions

    def forward(
        self, src: Tensor, src_lengths: Tensor, rnn: nn.RNNBase | None = None
    ) -> EncoderOutput:
        """Encode src (N, S) long with lengths (N,) into an EncoderOutput.

        `rnn` runs instead of `self.rnn` when given: a copy with the same weights
        in another dtype (`nmt.fast`); its outputs come back in the embedding's.
        """
        rnn = self.rnn if rnn is None else rnn
        x = self.dropout(self.embedding(src))  # (N, S, E)
        dtype = x.dtype
        packed = pack_padded_sequence(
            x.to(rnn.weight_ih_l0.dtype),
            src_lengths.cpu(),
            batch_first=True,
            enforce_sorted=False,
        )
        out, state = rnn(packed)
        memory, _ = pad_packed_sequence(out, batch_first=True, total_length=src.size(1))
        if self.is_lstm:
            state = torch.cat(state, dim=-1)  # (L*dirs, N, 2H): hidden ++ cell
        memory, state = memory.to(dtype), state.to(dtype)
        layers = state.size(0) // (2 if self.bidirectional else 1)
        state = state.view(layers, -1, *state.shape[1:])  # (L, dirs, N, H')
        if self.bidirectional:
            h = self.rnn.hidden_size
            memory = merge_directions(memory[..., :h], memory[..., h:], self.merge_mode)
            final = merge_directions(state[:, 0], state[:, 1], self.merge_mode)
            if self.is_lstm and self.merge_mode == "concat":
                # keep [hidden ++ cell] order: (fh, bh, fc, bc)
                fh, fc = state[:, 0].chunk(2, -1)
                bh, bc = state[:, 1].chunk(2, -1)
                final = torch.cat([fh, bh, fc, bc], dim=-1)
        else:
            final = state[:, 0]  # (L, N, H')
        mask = (
            torch.arange(src.size(1), device=src.device)[None, :]
            < src_lengths.to(src.device)[:, None]
        )  # (N, S)
        return EncoderOutput(memory, mask, final.transpose(0, 1).contiguous())
