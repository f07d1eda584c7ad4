"""The fused PyTorch RNNs the models stack, and their state layout.

Models keep RNN states batch-first, (N, L, H*) with H* = H (2H for LSTM: hidden ++
cell), so a search reorders them with one index_select; PyTorch's RNNs take
(L, N, H) (and an (h, c) pair for LSTM). Shapes: N rows, L layers, H hidden size.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

CELLS = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}
RNNState = Tensor | tuple[Tensor, Tensor]


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
    """A batch-first fused `nn.RNN`/`nn.GRU`/`nn.LSTM`; `cell` in CELLS;
    `nonlinearity` (tanh | relu) is the Elman cell's."""
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


def to_rnn(hidden: Tensor, lstm: bool) -> RNNState:
    """Batch-first (N, L, H*) -> what the RNN takes: (L, N, H), or (h, c) for LSTM."""
    state = hidden.transpose(0, 1).contiguous()  # (L, N, H*)
    if lstm:
        h, c = state.chunk(2, dim=-1)  # (L, N, H) each
        return h.contiguous(), c.contiguous()
    return state


def from_rnn(state: RNNState, lstm: bool) -> Tensor:
    """The RNN's final state -> batch-first (N, L, H*)."""
    if lstm:
        state = torch.cat(state, dim=-1)  # (L, N, 2H): hidden ++ cell
    return state.transpose(0, 1)
