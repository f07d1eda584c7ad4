"""Seq2Seq = encoder + bridge + decoder + output layer.

Implements the search protocol (`init_state` / `step` / `reorder` / `attention`)
so `nmt.search` decodes it without knowing its classes. Shapes: N sentences,
B beam width, S source length, T target length, V vocabulary.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nmt.data.tokenizer import BOS_ID, EOS_ID, PAD_ID
from nmt.models.decoder import DecoderState, RNNDecoder
from nmt.models.encoder import EncoderOutput, RNNEncoder

S = TypeVar("S", bound=tuple)
# DecoderState fields with one row per hypothesis (the others: one per sentence)
PER_ROW = ("hidden", "feed", "attn")


@dataclass
class ModelConfig:
    """Shape of the translation model (Hydra group `model`)."""

    cell: str = "gru"  # rnn (Elman) | gru | lstm, for encoder and decoder
    nonlinearity: str = "tanh"  # Elman cell only: tanh | relu
    embed_size: int = 256
    hidden_size: int = 512  # per encoder direction, and the decoder's
    num_layers: int = 1  # encoder and decoder layers
    bidirectional: bool = True
    merge_mode: str = "concat"  # how encoder directions merge: concat|sum|mul|ave
    attention: str = "bahdanau"  # bahdanau|luong_dot|luong_general|luong_concat|none
    attn_size: int = 0  # additive attention size; 0 = hidden_size
    input_feeding: bool = True  # Luong input feeding; false = fused fast decoder
    readout_size: int = 0  # size of the pre-softmax layer; 0 = hidden_size
    bridge: bool = True  # init decoder from the encoder's final state (else zeros)
    tie_output: bool = False  # share target embedding and output weights
    share_embeddings: bool = False  # one embedding for src and tgt (joint vocab)
    dropout: float = 0.3
    label_smoothing: float = 0.1


class Seq2Seq(nn.Module):
    """Attentional RNN encoder-decoder; a `Stepper` for the search.

    The reference implementation: `nmt.fast` decodes the same model faster on
    CPUs, behind the same protocol.
    """

    pad_id = PAD_ID
    bos_id = BOS_ID
    eos_id = EOS_ID

    def __init__(self, cfg: ModelConfig, *, src_vocab: int, tgt_vocab: int) -> None:
        super().__init__()
        self.cfg = cfg
        readout = (
            cfg.embed_size if cfg.tie_output else (cfg.readout_size or cfg.hidden_size)
        )
        src_emb = nn.Embedding(src_vocab, cfg.embed_size, padding_idx=PAD_ID)
        if cfg.share_embeddings:
            if src_vocab != tgt_vocab:
                raise ValueError("share_embeddings needs a joint vocabulary")
            tgt_emb = src_emb
        else:
            tgt_emb = nn.Embedding(tgt_vocab, cfg.embed_size, padding_idx=PAD_ID)
        self.encoder = RNNEncoder(
            embedding=src_emb,
            cell=cfg.cell,
            hidden_size=cfg.hidden_size,
            num_layers=cfg.num_layers,
            bidirectional=cfg.bidirectional,
            merge_mode=cfg.merge_mode,
            dropout=cfg.dropout,
            nonlinearity=cfg.nonlinearity,
        )
        memory = self.encoder.output_size
        self.decoder = RNNDecoder(
            embedding=tgt_emb,
            cell=cfg.cell,
            hidden_size=cfg.hidden_size,
            num_layers=cfg.num_layers,
            dropout=cfg.dropout,
            attention=cfg.attention,
            memory_size=memory,
            attn_size=cfg.attn_size or cfg.hidden_size,
            input_feeding=cfg.input_feeding,
            readout_size=readout,
            nonlinearity=cfg.nonlinearity,
        )
        lstm = 2 if cfg.cell == "lstm" else 1
        self.bridge = (
            nn.Linear(memory * lstm, cfg.hidden_size * lstm) if cfg.bridge else None
        )
        self.output = nn.Linear(readout, tgt_vocab)
        if cfg.tie_output:
            self.output.weight = tgt_emb.weight

    def start_hidden(self, enc: EncoderOutput) -> Tensor:
        """The decoder's first state (N, L, H*): tanh(W final) through the
        bridge, else zeros."""
        if self.bridge is not None:
            return torch.tanh(self.bridge(enc.final))
        lstm = 2 if self.cfg.cell == "lstm" else 1
        size = (enc.memory.size(0), self.cfg.num_layers, self.cfg.hidden_size * lstm)
        return enc.memory.new_zeros(size)

    def encode(self, src: Tensor, src_lengths: Tensor) -> DecoderState:
        """Encode src (N, S) with lengths (N,) into the decoder's start state."""
        enc = self.encoder(src, src_lengths)
        n, dec = src.size(0), self.decoder
        attends = dec.attention is not None
        return DecoderState(
            hidden=self.start_hidden(enc),
            feed=enc.memory.new_zeros(n, dec.readout_size) if dec.feeds else None,
            attn=enc.memory.new_zeros(n, src.size(1)) if attends else None,
            memory=enc.memory,
            keys=dec.attention.project_keys(enc.memory) if attends else None,
            mask=enc.mask,
        )

    def forward(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor) -> Tensor:
        """Teacher-forced readout features (N, T, R) for tgt_in (N, T)."""
        return self.decoder(tgt_in, self.encode(src, src_lengths))

    def loss(
        self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor, tgt_out: Tensor
    ) -> Tensor:
        """Summed label-smoothed cross-entropy over non-pad target tokens (scalar)."""
        feats = self(src, src_lengths, tgt_in)  # (N, T, R)
        keep = tgt_out != PAD_ID  # (N, T)
        logits = self.output(feats[keep])  # (K, V): only real tokens reach the softmax
        return F.cross_entropy(
            logits.float(),
            tgt_out[keep],
            reduction="sum",
            label_smoothing=self.cfg.label_smoothing if self.training else 0.0,
        )

    # -- search protocol ------------------------------------------------------
    def init_state(self, inputs: tuple[Tensor, Tensor], width: int) -> DecoderState:
        """inputs = (src (N, S), src_lengths (N,)) -> state with N*width rows.

        Only the per-row tensors are tiled; memory, keys and mask stay per sentence.
        """
        state = self.encode(*inputs)
        return state._replace(  # (N*W, ...)
            **{name: tile(getattr(state, name), width) for name in PER_ROW}
        )

    def step(self, tokens: Tensor, state: DecoderState) -> tuple[Tensor, DecoderState]:
        """tokens (rows,) -> logits (rows, V) (the search normalises them) and the
        new state."""
        feats, state = self.decoder.step(tokens, state)
        return self.output(feats), state

    def reorder(self, state: DecoderState, index: Tensor) -> DecoderState:
        """Keep/duplicate rows `index` (N'*W',) of the state (N*W rows).

        Follows the search protocol: `index` lists the rows of each kept sentence
        together, W' per sentence (W' may differ from W: the search widens 1 -> B).
        Per-sentence tensors are only gathered when sentences leave (finished ones
        drop out of the batch).
        """
        return reorder_state(state, PER_ROW, index)

    def attention(self, state: DecoderState) -> Tensor | None:
        """Last step's attention weights (rows, S), or None without attention."""
        return state.attn

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def tile(rows: Tensor | None, width: int) -> Tensor | None:
    """Each row (N, ...) repeated `width` times in place -> (N*width, ...)."""
    return None if rows is None else rows.repeat_interleave(width, dim=0)


def reorder_state(state: S, per_row: Sequence[str], index: Tensor) -> S:
    """`state`, a NamedTuple of N*W rows (W = state.width), at rows `index`
    (N'*W',): its fields `per_row` are gathered at `index`, its others (per
    sentence, (N, ...)) at the sentences `index` keeps. None fields stay None."""

    def pick(value: Tensor | None, at: Tensor) -> Tensor | None:
        return None if value is None else value.index_select(0, at)

    fields = state._asdict()
    moved = {name: pick(fields[name], index) for name in per_row}
    sentences = torch.unique_consecutive(index // state.width)  # (N',)
    if sentences.numel() == state.mask.size(0):  # the same sentences
        return state._replace(**moved)
    shared = {k: pick(v, sentences) for k, v in fields.items() if k not in per_row}
    return type(state)(**moved, **shared)
