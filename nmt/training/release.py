"""Checkpoints for release: the inference state alone, optionally cast to a smaller
dtype, and the weight average of several checkpoints of one run.

A training checkpoint carries the optimizer's moments, the progress and RNG states
(about 3x the weights' size). An inference checkpoint keeps only what
`nmt.inference.loading` reads: kind, config, weights and tokenizers, and is
marked "exported" so that `train.resume` can refuse it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from nmt.training.checkpoint import CheckpointError, load_checkpoint

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
KEPT = ("kind", "config", "tokenizers")  # besides the weights
STEP_FILE = re.compile(r"step_(\d+)\.pt")  # kept by train.keep_last


def inference_payload(
    payload: dict[str, Any],
    *,
    model: dict[str, torch.Tensor] | None = None,
    dtype: str = "fp32",
    note: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The inference part of a checkpoint `payload`.

    Args:
        payload: a training (or inference) checkpoint's payload.
        model: weights to use instead of `payload["model"]` (an average).
        dtype: floating-point weights are stored as fp32, bf16 or fp16; loading
            casts them back to the model's fp32 parameters.
        note: what was done, kept under "exported" (e.g. the averaged steps).
    """
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype '{dtype}'; use {' | '.join(DTYPES)}")
    weights = payload["model"] if model is None else model
    cast = {
        name: t.to(DTYPES[dtype]) if t.is_floating_point() else t
        for name, t in weights.items()
    }
    exported = {"dtype": dtype, **(note or {})}
    return {**{k: payload[k] for k in KEPT}, "model": cast, "exported": exported}


def load_compatible(paths: Sequence[str | Path]) -> list[dict[str, Any]]:
    """The checkpoints at `paths`, checked to be of one kind, model config and
    vocabulary (CheckpointError naming the first that differs)."""
    if not paths:
        raise ValueError("no checkpoints given")
    payloads = [load_checkpoint(path) for path in paths]
    first = payloads[0]
    for key in ("kind", "config", "model", "tokenizers"):
        if key not in first:
            raise CheckpointError(f"{paths[0]} has no '{key}': not a model checkpoint")
    for path, payload in zip(paths[1:], payloads[1:]):
        for what, get in (
            ("kind", lambda p: p.get("kind")),
            ("model config", lambda p: p.get("config", {}).get("model")),
            ("vocabulary", lambda p: p.get("tokenizers")),
            ("weight names and shapes", _shapes),
        ):
            if get(payload) != get(first):
                raise CheckpointError(
                    f"{path} has another {what} than {paths[0]}: "
                    "only checkpoints of one model can be combined"
                )
    return payloads


def _shapes(payload: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    return {name: tuple(t.shape) for name, t in payload.get("model", {}).items()}


def average_weights(payloads: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """The element-wise mean of the payloads' floating-point weights (summed in
    float64, returned as fp32); other tensors must be equal and are kept."""
    models = [p["model"] for p in payloads]
    mean: dict[str, torch.Tensor] = {}
    for name, first in models[0].items():
        if first.is_floating_point():
            total = sum(m[name].to(torch.float64) for m in models)
            mean[name] = (total / len(models)).to(torch.float32)
        elif all(torch.equal(m[name], first) for m in models):
            mean[name] = first
        else:
            raise CheckpointError(f"cannot average '{name}': it is not a float tensor")
    return mean


def kept_checkpoints(run_dir: Path) -> dict[int, Path]:
    """The step_N.pt files of a run dir (`train.keep_last`), by step."""
    found = {}
    for path in (Path(run_dir) / "checkpoints").glob("step_*.pt"):
        if match := STEP_FILE.fullmatch(path.name):
            found[int(match.group(1))] = path
    return dict(sorted(found.items()))


def file_mib(path: str | Path) -> float:
    return Path(path).stat().st_size / 2**20
