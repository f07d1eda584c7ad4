"""Linear layer with its weight packed once by oneDNN, for decoding on CPUs.

`F.linear` hands oneDNN a plain row-major weight, which it re-blocks on every
call; a search calls the same few linear maps at every step. Packing once
(`torch.ops.mkldnn._reorder_linear_weight`, the layout PyTorch's own compiler
uses for CPU linear layers) saves that work. On this project's CPU (Zen 4, one
thread, bf16) the (320 x 512) x (512 x 3963) output layer of a beam-5 step at
batch 64 takes 6.5 ms instead of 7.9, and the 5 rows of a beam-5 step at batch 1
0.21 instead of 0.26 (fp32: 13.7 instead of 26.1 ms). In bf16 the results are
bitwise those of `F.linear` under autocast; in fp32 they differ by rounding
(~1e-4 on outputs of ~10); bitwise as measured on this CPU, where oneDNN runs
both. `frozen_linear` picks a search step's copy of a linear map (this or int8).
Shapes: N rows, K inputs, V outputs.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

import torch
from torch import Tensor, nn

from nmt.models.int8 import Int8Linear

DTYPES = (torch.bfloat16, torch.float32)


class PackedLinear:
    """Frozen y = x W^T + b in `dtype` with W packed for oneDNN (inference, CPU)."""

    def __init__(self, weight: Tensor, bias: Tensor | None, dtype: torch.dtype) -> None:
        """weight (V, K), bias (V,) or None: copied in `dtype`, not followed."""
        self.dtype = dtype
        self.weight = torch.ops.mkldnn._reorder_linear_weight(
            weight.detach().to(dtype).contiguous()
        )
        self.bias = None if bias is None else bias.detach().to(dtype)

    def __call__(self, x: Tensor) -> Tensor:
        """x (N, K) -> (N, V) in `dtype`."""
        return torch.ops.mkldnn._linear_pointwise(
            x.to(self.dtype).contiguous(), self.weight, self.bias, "none", [], ""
        )


@functools.cache
def _works(dtype: torch.dtype) -> bool:
    try:  # the ops are internal to PyTorch: probe them once, fall back if absent
        layer = PackedLinear(torch.ones(3, 2), torch.zeros(3), dtype)
        out = layer(torch.ones(4, 2))
    except (AttributeError, RuntimeError, NotImplementedError):
        return False
    return out.shape == (4, 3) and bool((out.float() == 2.0).all())


def packable(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether `PackedLinear` runs for `dtype` on `device` (a CPU with oneDNN)."""
    return (
        device.type == "cpu"
        and dtype in DTYPES
        and torch.backends.mkldnn.is_available()
        and torch.backends.mkldnn.enabled  # the user's switch to turn oneDNN off
        and _works(dtype)
    )


def weights_key(weights: Iterable[Tensor]) -> tuple:
    """What a cached copy of `weights` is keyed by: their storage and version
    (in-place updates count; writes through `.data` do not)."""
    return tuple((w.data_ptr(), w._version) for w in weights)


class SearchCaches(nn.Module):
    """A module whose attributes named in CACHES hold copies of its weights made
    for a search (packed, int8, bf16). They are dropped when training starts, so
    writes their keys cannot see (`.data`, fused optimizers) cannot leave them
    stale, and left out of copies and pickles (packed oneDNN weights cannot be
    copied)."""

    CACHES: tuple[str, ...] = ()

    def train(self, mode: bool = True) -> SearchCaches:
        if mode:
            for name in self.CACHES:
                setattr(self, name, None)
        return super().train(mode)

    def __getstate__(self) -> dict:
        return {**super().__getstate__(), **dict.fromkeys(self.CACHES)}


def compute_dtype(device: torch.device, default: torch.dtype) -> torch.dtype:
    """The dtype linear maps run in on `device` here: autocast's when it is on,
    else `default` (the weights')."""
    if torch.is_autocast_enabled(device.type):
        return torch.get_autocast_dtype(device.type)
    return default


def frozen_linear(
    weight: Tensor,
    bias: Tensor | None,
    device: torch.device,
    dtype: torch.dtype,
    *,
    int8: bool,
) -> Int8Linear | PackedLinear | None:
    """A search step's frozen copy of y = x W^T + b: int8 when asked (float32
    out), else packed where oneDNN runs `dtype` on `device`, else None (use the
    layer itself)."""
    if int8:
        return Int8Linear(weight, bias)
    if packable(device, dtype):
        return PackedLinear(weight, bias, dtype)
    return None
