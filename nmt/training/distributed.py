"""Multi-process data-parallel training under torchrun (gloo on CPU, NCCL on GPUs).

Every rank builds the same model and walks the same batch order; each takes its
share of every global batch. Only rank 0 validates and writes files. Without
torchrun's environment (WORLD_SIZE unset or 1) everything here is a no-op.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn


@dataclass(frozen=True)
class Distributed:
    """This process's place in the job: world size, rank, local rank."""

    world: int = 1
    rank: int = 0
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> Distributed:
        """Read torchrun's WORLD_SIZE / RANK / LOCAL_RANK (single process without)."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        return cls(
            world, int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
        )

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def init(self, device: torch.device) -> torch.device:
        """Join the process group; returns this rank's device."""
        if not self.enabled:
            return device
        if device.type == "cuda":
            device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        return device

    def wrap(self, module: nn.Module, device: torch.device) -> nn.Module:
        """DistributedDataParallel around `module` (gradients averaged over ranks)."""
        if not self.enabled:
            return module
        ids = [device.index] if device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(module, device_ids=ids)

    def shard(self, items: list[Any]) -> list[Any]:
        """This rank's share of one global batch."""
        return items[self.rank :: self.world] if self.enabled else items

    def sum(self, value: float, device: torch.device) -> float:
        """Sum of `value` over ranks."""
        if not self.enabled:
            return value
        tensor = torch.tensor([value], dtype=torch.float64, device=device)
        dist.all_reduce(tensor)
        return float(tensor)

    def any(self, flag: bool, device: torch.device) -> bool:
        """True on every rank when it is True on any rank."""
        return self.sum(float(flag), device) > 0 if self.enabled else flag

    def from_main(self, obj: Any) -> Any:
        """Rank 0's `obj` on every rank."""
        if not self.enabled:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's `obj`, in rank order, on every rank."""
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def params_in_sync(self, module: nn.Module) -> bool:
        """Whether all ranks hold identical parameters."""
        flat = torch.cat(
            [p.detach().float().flatten().cpu() for p in module.parameters()]
        )
        checksums = self.gather([float(flat.sum()), float((flat * flat).sum())])
        return all(c == checksums[0] for c in checksums)

    def close(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()


class LossModule(nn.Module):
    """Wraps a model's `loss(...)` as `forward` so DDP sees the training call."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, *args: Tensor) -> Tensor:
        return self.model.loss(*args)
