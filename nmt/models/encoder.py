"""Embedding + stacked (bi)directional RNN encoder over a padded batch.

Shapes: N sentences, S source length, E embedding size, H hidden size per
direction, L layers, M memory size (2H for `concat`, else H).
"""

from __future__ import annotations

import copy
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from nmt.models.packed import SearchCaches, weights_key

CELLS = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}
MERGE_MODES = ("concat", "sum", "mul", "ave")


def make_rnn(
    cell: str,
    *,
    input_size: int,
    hidden_size: int,
    num_layers: int,
    dropout: float,
    bidirectional: bool = False,
    nonlinearity: str = "tanh",
) -> nn.RNNBase:
    """A batch-first fused `nn.RNN`/`nn.GRU`/`nn.LSTM`; `cell` in CELLS."""
    if cell not in CELLS:
        raise ValueError(f"unknown cell '{cell}'; choose one of {', '.join(CELLS)}")
    extra = {"nonlinearity": nonlinearity} if cell == "rnn" else {}
    return CELLS[cell](
        input_size,
        hidden_size,
        num_layers=num_layers,
        dropout=dropout if num_layers > 1 else 0.0,
        bidirectional=bidirectional,
        batch_first=True,
        **extra,
    )


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


class RNNEncoder(SearchCaches):
    """Embeds source ids and runs a fused RNN over packed sequences, so a padded
    sentence encodes exactly like the same sentence alone (in float32; the bf16
    copy used for decoding may round differently at another batch size)."""

    CACHES = ("_bf16",)

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
        self._bf16: tuple[tuple, nn.Module] | None = None  # (key, copy), not saved

    def _rnn_for(self, x: Tensor) -> tuple[nn.Module, Tensor]:
        """The RNN to run on x and x as it takes it. Decoding on a CPU under bf16
        autocast gets a bfloat16 copy of the RNN (PyTorch's CPU autocast leaves
        RNNs in float32; the copy runs the BiGRU ~2x faster at 64 sentences),
        cached while the parameters are unchanged; else the RNN itself."""
        kind = x.device.type
        if (
            kind != "cpu"
            or self.training
            or torch.is_grad_enabled()
            or not torch.is_autocast_enabled(kind)
            or torch.get_autocast_dtype(kind) != torch.bfloat16
        ):
            return self.rnn, x
        key = weights_key(self.rnn.parameters())
        cached = self._bf16  # one read: another decoding thread may replace it
        if cached is None or cached[0] != key:
            cached = (key, copy.deepcopy(self.rnn).to(torch.bfloat16))
            self._bf16 = cached
        return cached[1], x.to(torch.bfloat16)

    def forward(self, src: Tensor, src_lengths: Tensor) -> EncoderOutput:
        """Encode src (N, S) long with lengths (N,) into an EncoderOutput."""
        x = self.dropout(self.embedding(src))  # (N, S, E)
        dtype = x.dtype
        rnn, x = self._rnn_for(x)
        packed = pack_padded_sequence(
            x, src_lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        out, state = rnn(packed)
        memory, _ = pad_packed_sequence(out, batch_first=True, total_length=src.size(1))
        if self.is_lstm:
            state = torch.cat(state, dim=-1)  # (L*dirs, N, 2H): hidden ++ cell
        if rnn is not self.rnn:  # the bf16 copy: back to the model's dtype
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
