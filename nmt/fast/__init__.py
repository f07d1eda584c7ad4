"""Optional decoding speed for CPUs, behind the search protocol.

`stepper(model, ...)` returns what the search should decode with: a
`FastSeq2Seq` over a translation model with attention on a CPU, else the model
itself (the reference: on CUDA, for the char LM, without attention, or with
`NMT_FAST=0` in the environment). Tests hold the fast stepper equal to the model.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import torch
from torch import Tensor, nn

from nmt.models.seq2seq import Seq2Seq


def enabled() -> bool:
    """False when the environment says NMT_FAST=0."""
    return os.environ.get("NMT_FAST", "1") != "0"


def stepper(model: nn.Module, *, dtype: torch.dtype, int8: bool = False) -> object:
    """The `Stepper` to decode `model` with on its device.

    Args:
        model: a Seq2Seq or a CharLM.
        dtype: what the search's linear maps run in (bf16 under bf16 autocast).
        int8: int8 copies of the per-row linear maps (translation, CPU only).
    """
    applies = (
        isinstance(model, Seq2Seq)
        and model.decoder.attention is not None
        and model.output.weight.device.type == "cpu"
    )
    if int8 and not (applies and enabled()):
        raise ValueError(
            "precision int8 runs on the fast CPU path only (a translation model "
            "with attention on a CPU, NMT_FAST not 0)"
        )
    if not (applies and enabled()):
        return model
    from nmt.fast.seq2seq import FastSeq2Seq

    return FastSeq2Seq(model, dtype=dtype, int8=int8)


def weights_key(weights: Iterable[Tensor]) -> tuple:
    """What a copy of `weights` made for searches is keyed by: their storage and
    version (in-place updates such as an optimizer step count)."""
    return tuple((w.data_ptr(), w._version) for w in weights)
