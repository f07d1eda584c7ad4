"""Seq2Seq = encoder + bridge + decoder + output layer.

Implements the search protocol (`init_state` / `step` / `reorder` / `attention`)
so `nmt.search` decodes it without knowing its classes. Shapes: N sentences,
B beam width, S source length, T target length, V vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nmt.models.decoder import DecoderState, RNNDecoder
from nmt.models.encoder import RNNEncoder
from nmt.models.int8 import Int8Linear
from nmt.models.packed import (
    PackedLinear,
    SearchCaches,
    compute_dtype,
    frozen_linear,
    weights_key,
)
from nmt.tokenizer import BOS_ID, EOS_ID, PAD_ID


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


class Seq2Seq(SearchCaches):
    """Attentional RNN encoder-decoder.

    Searches on a CPU use frozen copies of the step's per-row linear maps (the
    output layer here, the decoder's own in `RNNDecoder`), rebuilt when the
    weights change: oneDNN-packed ones (`PackedLinear`), or int8 ones after
    `use_int8(True)` (a `Translator` with precision "int8").
    """

    CACHES = ("_fast",)
    pad_id = PAD_ID
    bos_id = BOS_ID
    eos_id = EOS_ID
    int8 = False

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
        )
        lstm = 2 if cfg.cell == "lstm" else 1
        self.bridge = (
            nn.Linear(memory * lstm, cfg.hidden_size * lstm) if cfg.bridge else None
        )
        self.output = nn.Linear(readout, tgt_vocab)
        if cfg.tie_output:
            self.output.weight = tgt_emb.weight
        self._fast: tuple[tuple, Int8Linear | PackedLinear | None] | None = None

    def encode(self, src: Tensor, src_lengths: Tensor) -> DecoderState:
        """Encode src (N, S) with lengths (N,) into the decoder's start state."""
        enc = self.encoder(src, src_lengths)
        n, layers = src.size(0), self.cfg.num_layers
        lstm = 2 if self.cfg.cell == "lstm" else 1
        if self.bridge is not None:
            hidden = torch.tanh(self.bridge(enc.final))  # (N, L, H*)
        else:
            hidden = enc.memory.new_zeros(n, layers, self.cfg.hidden_size * lstm)
        attention = self.decoder.attention
        keys = (
            attention.project_keys(enc.memory)
            if attention is not None
            else enc.memory[:, :, :0]
        )
        feed = enc.memory.new_zeros(
            n, self.decoder.readout_size if self.decoder.feeds else 0
        )
        attn = enc.memory.new_zeros(n, src.size(1) if attention is not None else 0)
        unused = enc.memory[:, :, :0]  # values, prepared: filled by init_state
        return DecoderState(
            hidden, feed, attn, enc.memory, keys, enc.mask, unused, unused
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

        Only the per-row tensors are tiled; keys stay (N, S, ·), and keys, the
        context's share of the decoder's linear maps (values) and what the
        attention prepares from the keys are computed once here, not at every
        step. The memory itself is then dropped (N, S, 0) when there are values.
        """
        src, src_lengths = inputs
        state = self.encode(src, src_lengths)
        attention = self.decoder.attention
        prepared = (
            state.prepared if attention is None else attention.prepare(state.keys)
        )
        values = self.decoder.project_memory(state.memory)  # (N, S, G)
        memory = state.memory
        if values.size(-1) > 0:  # steps with values never read the memory:
            # (N, S, 0) frees it, and finished sentences leaving do not copy it
            memory = memory.new_empty(*memory.shape[:2], 0)
        return state._replace(
            memory=memory,
            values=values,
            prepared=prepared,  # (N, S, ·)
            hidden=state.hidden.repeat_interleave(width, dim=0),  # (N*W, L, H*)
            feed=state.feed.repeat_interleave(width, dim=0),  # (N*W, R)
            attn=state.attn.repeat_interleave(width, dim=0),  # (N*W, S)
        )

    def step(self, tokens: Tensor, state: DecoderState) -> tuple[Tensor, DecoderState]:
        """tokens (rows,) -> logits (rows, V) (the autocast dtype; the search
        normalises them, fused with its top-k) and the new state."""
        feats, state = self.decoder.step(tokens, state)
        fast = None if torch.is_grad_enabled() else self._fast_output(feats.device)
        logits = fast(feats) if fast is not None else self.output(feats)  # (rows, V)
        return logits, state

    def use_int8(self, on: bool) -> None:
        """Searches (no gradients) use int8 copies of the per-row linear maps."""
        self.int8 = self.decoder.int8 = on

    def _fast_output(self, device: torch.device) -> Int8Linear | PackedLinear | None:
        """The output layer's int8 or packed copy for a search step (None: use the
        layer itself), rebuilt when its weights (`weights_key`) or the autocast
        dtype change."""
        weight, bias = self.output.weight, self.output.bias
        dtype = compute_dtype(device, weight.dtype)
        key = (*weights_key((weight, bias)), dtype, self.int8)
        cached = self._fast  # one read: another decoding thread may replace it
        if cached is not None and cached[0] == key:
            return cached[1]
        fast = frozen_linear(weight, bias, device, dtype, int8=self.int8)
        self._fast = (key, fast)
        return fast

    def reorder(self, state: DecoderState, index: Tensor) -> DecoderState:
        """Keep/duplicate rows `index` (N'*W',) of the state (N*W rows).

        Follows the search protocol: `index` lists the rows of each kept sentence
        together, W' per sentence (W' may differ from W: the search widens 1 -> B).
        Per-sentence tensors are only gathered when sentences leave (finished ones
        drop out of the batch).
        """
        per_row = {
            "hidden": state.hidden.index_select(0, index),
            "feed": state.feed.index_select(0, index),
            "attn": state.attn.index_select(0, index),
        }
        sentences = torch.unique_consecutive(index // state.width)  # (N',)
        if sentences.numel() == state.memory.size(0):  # the same sentences
            return state._replace(**per_row)
        return DecoderState(
            **per_row,
            memory=state.memory.index_select(0, sentences),
            keys=state.keys.index_select(0, sentences),
            mask=state.mask.index_select(0, sentences),
            values=state.values.index_select(0, sentences),
            prepared=state.prepared.index_select(0, sentences),
        )

    def attention(self, state: DecoderState) -> Tensor | None:
        """Last step's attention weights (rows, S), or None without attention."""
        return state.attn if self.decoder.attention is not None else None

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
