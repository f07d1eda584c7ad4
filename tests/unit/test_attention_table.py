"""The `:attn` table: percent weights, one row per target piece, aligned columns."""

from __future__ import annotations

import pytest
import torch

from nmt.inference.attention_table import attention_table


def test_table_by_hand():
    attention = torch.tensor([[0.9, 0.1, 0.0], [0.25, 0.5, 0.25]])
    table = attention_table(["ein", "mann", ""], ["a", "man\n"], attention)
    assert table.split("\n") == [
        "      ein mann   ·",
        "a      90   10   0",
        "man\\n  25   50  25",
    ]


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="does not match"):
        attention_table(["a"], ["b", "c"], torch.zeros(1, 1))
