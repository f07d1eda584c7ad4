"""Character-level RNN language model: embedding -> stacked RNN -> softmax.

Implements the search protocol (`init_state` / `step` / `reorder` / `attention`)
so `nmt.search` decodes it exactly as it decodes Seq2Seq. Reads these `ModelConfig`
fields: cell, nonlinearity, embed_size, hidden_size, num_layers, dropout,
tie_output, label_smoothing; the translation-only ones are ignored.
Shapes: N rows (streams or prompts), T steps, P prompt length, L layers, H hidden
size, H* = H (2H for LSTM: hidden ++ cell), E embedding size, V vocabulary.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence

from nmt.data.tokenizer import BOS_ID, EOS_ID, PAD_ID
from nmt.models.rnn import from_rnn, make_rnn, to_rnn
from nmt.models.seq2seq import ModelConfig


class LMState(NamedTuple):
    """Search state, batch-first so that `reorder` is an index_select on dim 0."""

    hidden: Tensor  # (rows, L, H*) per-layer RNN state
    pending: Tensor  # (rows,) last prompt token, fed at the first step instead of BOS


class CharLM(nn.Module):
    """Stacked Elman/GRU/LSTM over characters, dropout between layers and before the
    output layer; `tie_output` shares the embedding with the output layer (through
    a projection H -> E when the sizes differ)."""

    pad_id = PAD_ID
    bos_id = BOS_ID
    eos_id = EOS_ID

    def __init__(self, cfg: ModelConfig, *, vocab_size: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.embedding = nn.Embedding(vocab_size, cfg.embed_size)
        self.rnn = make_rnn(
            cfg.cell,
            input_size=cfg.embed_size,
            hidden_size=cfg.hidden_size,
            num_layers=cfg.num_layers,
            dropout=cfg.dropout,
            nonlinearity=cfg.nonlinearity,
        )
        self.dropout = nn.Dropout(cfg.dropout)
        tied_projection = cfg.tie_output and cfg.embed_size != cfg.hidden_size
        self.project = (
            nn.Linear(cfg.hidden_size, cfg.embed_size, bias=False)
            if tied_projection
            else None
        )
        features = cfg.embed_size if cfg.tie_output else cfg.hidden_size
        self.output = nn.Linear(features, vocab_size)
        if cfg.tie_output:
            self.output.weight = self.embedding.weight
        self.is_lstm = cfg.cell == "lstm"

    # -- state layout -----------------------------------------------------------
    def zero_state(self, rows: int, device: torch.device | str = "cpu") -> Tensor:
        """All-zero hidden state (rows, L, H*)."""
        size = self.cfg.hidden_size * (2 if self.is_lstm else 1)
        return torch.zeros(rows, self.cfg.num_layers, size, device=device)

    # -- training ---------------------------------------------------------------
    def forward(
        self, tokens: Tensor, hidden: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Logits for the next character after each input.

        Args:
            tokens: (N, T) long character ids.
            hidden: (N, L, H*) state before tokens[:, 0]; None = zeros.

        Returns:
            logits (N, T, V) and the state after tokens[:, -1] (N, L, H*).
        """
        x = self.embedding(tokens)  # (N, T, E)
        if hidden is None:
            hidden = self.zero_state(tokens.size(0), tokens.device)
        out, state = self.rnn(x, to_rnn(hidden.to(x.dtype), self.is_lstm))  # (N,T,H)
        feats = self.dropout(out)
        if self.project is not None:
            feats = self.project(feats)  # (N, T, E)
        return self.output(feats), from_rnn(state, self.is_lstm)

    def loss(
        self, tokens: Tensor, targets: Tensor, hidden: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Summed cross-entropy (nats) of targets (N, T) given tokens (N, T).

        Label smoothing (cfg.label_smoothing) applies in training mode only.
        Returns the scalar sum and the final state (N, L, H*).
        """
        logits, hidden = self(tokens, hidden)  # (N, T, V)
        loss = F.cross_entropy(
            logits.float().flatten(0, 1),
            targets.flatten(),
            reduction="sum",
            label_smoothing=self.cfg.label_smoothing if self.training else 0.0,
        )
        return loss, hidden

    # -- search protocol ----------------------------------------------------------
    def read_prompt(self, prompt: Tensor, lengths: Tensor) -> Tensor:
        """State (N, L, H*) after all but the last token of each prompt.

        One fused RNN call over packed sequences (not one `step` per character):
        prompt (N, P) right-padded, lengths (N,) >= 1. Prompts of length 1 keep
        the zero state.
        """
        hidden = self.zero_state(prompt.size(0), prompt.device)
        body = lengths.to(prompt.device) - 1  # (N,) tokens read before the search
        rows = (body > 0).nonzero().squeeze(1)  # (N',)
        if rows.numel() == 0:
            return hidden
        x = self.embedding(prompt[rows])  # (N', P, E)
        packed = pack_padded_sequence(
            x, body[rows].cpu(), batch_first=True, enforce_sorted=False
        )
        _, state = self.rnn(packed, to_rnn(hidden[rows].to(x.dtype), self.is_lstm))
        hidden[rows] = from_rnn(state, self.is_lstm).to(hidden.dtype)
        return hidden

    def init_state(self, inputs: tuple[Tensor, Tensor], width: int) -> LMState:
        """inputs = (prompt (N, P), lengths (N,) >= 1) -> state with N*width rows.

        The prompt is read here by the fused RNN (much faster than forcing it as
        a search prefix, which costs one `step` per character); its last token
        is kept as `pending` and fed by the first `step`, which gets BOS.
        """
        prompt, lengths = inputs
        if prompt.numel() == 0 or int(lengths.min()) < 1:
            raise ValueError("CharLM needs a prompt of at least one character")
        hidden = self.read_prompt(prompt, lengths)  # (N, L, H*)
        index = (lengths.to(prompt.device) - 1).unsqueeze(1)  # (N, 1)
        pending = prompt.gather(1, index).squeeze(1)  # (N,)
        return LMState(
            hidden.repeat_interleave(width, dim=0),  # (N*B, L, H*)
            pending.repeat_interleave(width, dim=0),  # (N*B,)
        )

    def step(self, tokens: Tensor, state: LMState) -> tuple[Tensor, LMState]:
        """tokens (rows,) -> logits (rows, V) (the searches normalise them) and
        the new state."""
        inputs = torch.where(tokens == self.bos_id, state.pending, tokens)  # (rows,)
        logits, hidden = self(inputs.unsqueeze(1), state.hidden)  # (rows, 1, V)
        return logits[:, 0], LMState(hidden, state.pending)

    def reorder(self, state: LMState, index: Tensor) -> LMState:
        """Keep/duplicate rows `index` (rows',) of the state."""
        return LMState(*(t.index_select(0, index) for t in state))

    def attention(self, state: LMState) -> Tensor | None:
        """An LM attends to nothing."""
        return None

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
