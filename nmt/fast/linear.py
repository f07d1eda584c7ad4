"""Frozen copies of a linear map y = x W^T + b for a search step on CPUs.

- `PackedLinear`: the weight packed once by oneDNN
  (`torch.ops.mkldnn._reorder_linear_weight`, the layout PyTorch's own compiler
  uses for CPU linear layers). `F.linear` hands oneDNN a plain row-major weight,
  which it re-blocks at every call, and a search calls the same few maps at every
  step. In bf16 the results are bitwise those of `F.linear` under autocast; in
  fp32 they may differ by rounding where oneDNN does not run both.
- `Int8Linear`: dynamic quantization (PyTorch's fbgemm/qnnpack
  `quantized::linear_dynamic`): the weight quantized once per output row
  (symmetric int8), each call's input to uint8 with one scale for the batch,
  float32 out. A sentence may therefore decode slightly differently alone than
  in a batch.

Shapes: N rows, K inputs, V outputs.
"""

from __future__ import annotations

import functools
import warnings

import torch
from torch import Tensor
from torch.nn import functional as F

DTYPES = (torch.bfloat16, torch.float32)


class PackedLinear:
    """Frozen y = x W^T + b in `dtype` with W packed for oneDNN (inference, CPU)."""

    def __init__(self, weight: Tensor, bias: Tensor | None, dtype: torch.dtype) -> None:
        """weight (V, K), bias (V,) or None: copied in `dtype`, not followed."""
        self.dtype = dtype
        self.weight = torch.ops.mkldnn._reorder_linear_weight(
            weight.detach().to(dtype).contiguous()
        )
        self.bias = None if bias is None else bias.detach().to(dtype, copy=True)

    def __call__(self, x: Tensor) -> Tensor:
        """x (N, K) -> (N, V) in `dtype`."""
        return torch.ops.mkldnn._linear_pointwise(
            x.to(self.dtype).contiguous(), self.weight, self.bias, "none", [], ""
        )


class PlainLinear:
    """Frozen y = x W^T + b in `dtype` through `F.linear` (where oneDNN cannot pack)."""

    def __init__(self, weight: Tensor, bias: Tensor | None, dtype: torch.dtype) -> None:
        self.weight = weight.detach().to(dtype, copy=True).contiguous()
        self.bias = None if bias is None else bias.detach().to(dtype, copy=True)

    def __call__(self, x: Tensor) -> Tensor:
        """x (N, K) -> (N, V)."""
        return F.linear(x, self.weight, self.bias)


class Int8Linear:
    """Frozen int8 copy of y = x W^T + b (inference only, CPU)."""

    def __init__(self, weight: Tensor, bias: Tensor | None) -> None:
        """weight (V, K), bias (V,) or None: copied, not followed."""
        w = weight.detach().float().cpu()
        scales = w.abs().amax(dim=1).clamp(min=1e-12).double() / 127.0  # (V,)
        zeros = torch.zeros(w.size(0), dtype=torch.long)
        with warnings.catch_warnings():  # quantized tensors are deprecated, the op not
            warnings.simplefilter("ignore", UserWarning)
            quantized = torch.quantize_per_channel(w, scales, zeros, 0, torch.qint8)
        b = None if bias is None else bias.detach().float().cpu()
        self.packed = torch.ops.quantized.linear_prepack(quantized, b)

    def __call__(self, x: Tensor) -> Tensor:
        """x (N, K) -> (N, V) float32."""
        # reduce_range: 7-bit activations, so CPUs without VNNI cannot saturate
        # their 16-bit pair sums (fbgemm's own default for this op)
        return torch.ops.quantized.linear_dynamic(
            x.float().contiguous(), self.packed, True
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


FrozenLinear = Int8Linear | PackedLinear | PlainLinear


def frozen_linear(
    weight: Tensor, bias: Tensor | None, dtype: torch.dtype, *, int8: bool = False
) -> FrozenLinear:
    """A search step's frozen copy of y = x W^T + b on the weight's device: int8
    when asked (float32 out), else packed where oneDNN runs `dtype` there, else
    plain."""
    if int8:
        return Int8Linear(weight, bias)
    if packable(weight.device, dtype):
        return PackedLinear(weight, bias, dtype)
    return PlainLinear(weight, bias, dtype)
