"""Rebuild a trained model and its tokenizers from a self-contained checkpoint."""

from __future__ import annotations

from pathlib import Path

import torch

from nmt.checkpoint import CheckpointError, load_checkpoint
from nmt.config import TrainConfig, from_dict
from nmt.models.seq2seq import Seq2Seq
from nmt.runtime import resolve_precision
from nmt.tokenizer import SentencePieceTokenizer
from nmt.translator import Translator


def load_translator(
    path: str | Path, *, device: torch.device, precision: str = "auto"
) -> tuple[Translator, TrainConfig]:
    """Translator (model in eval mode on `device`) and the config it was trained with.

    Raises:
        CheckpointError: missing/corrupt file, not a translation checkpoint, or
            weights that do not fit the saved config.
    """
    payload = load_checkpoint(path)
    if payload.get("kind") != "seq2seq":
        raise CheckpointError(
            f"{path} is a '{payload.get('kind')}' checkpoint, not a translation model"
        )
    try:
        cfg: TrainConfig = from_dict(TrainConfig, payload["config"])
        src_tok = SentencePieceTokenizer.from_bytes(payload["tokenizers"]["src"])
        tgt_tok = SentencePieceTokenizer.from_bytes(payload["tokenizers"]["tgt"])
        model = Seq2Seq(
            cfg.model, src_vocab=src_tok.vocab_size, tgt_vocab=tgt_tok.vocab_size
        )
        model.load_state_dict(payload["model"])
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        first = (
            str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        )
        raise CheckpointError(
            f"{path} does not fit its config or vocabulary: {first}"
        ) from None
    model.eval()
    translator = Translator(
        model,
        src_tok,
        tgt_tok,
        device=device,
        precision=resolve_precision(precision, device),
    )
    return translator, cfg
