"""PeakMemory sees an allocation made inside the block, and only the growth."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from nmt.utils.memory import PeakMemory, resident_bytes

pytestmark = pytest.mark.skipif(
    resident_bytes() is None, reason="needs /proc/self/statm (Linux)"
)


def test_sees_a_64_mib_tensor_allocated_and_freed_inside_the_block():
    before = threading.active_count()
    with PeakMemory("cpu") as memory:
        tensor = torch.ones(16 * 2**20)  # 64 MiB of float32, every page touched
        time.sleep(0.05)  # several 5 ms samples while it is alive
        del tensor
    assert memory.peak_mb is not None
    assert 60 <= memory.peak_mb < 64 + 40, memory.peak_mb
    assert "RSS" in memory.note
    assert threading.active_count() == before  # the sampler thread has stopped


def test_memory_held_from_before_the_block_is_not_counted():
    held = torch.ones(16 * 2**20)  # allocated before: part of the baseline
    with PeakMemory("cpu") as memory:
        held.add_(1)  # in place: no new memory
        time.sleep(0.02)
    assert memory.peak_mb is not None and memory.peak_mb < 20, memory.peak_mb
