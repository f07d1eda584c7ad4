"""Char LM data: the train/validation cut and the stream/window layout for TBPTT."""

from __future__ import annotations

import pytest
import torch

from nmt.data.chars import CharStream, split_text
from nmt.data.parallel import DataError


def test_split_keeps_the_first_part_for_training():
    text = "".join(chr(ord("a") + i % 26) for i in range(100))
    train, val = split_text(text, 0.1)
    assert train + val == text and len(val) == 10
    with pytest.raises(ValueError, match="val_fraction"):
        split_text(text, 1.0)
    with pytest.raises(DataError, match="too short"):
        split_text("abc", 0.1)


def test_streams_are_consecutive_text_and_windows_continue_row_by_row():
    ids = list(range(100, 127))  # 27 ids: 3 streams of (27 - 1) // 3 = 8
    stream = CharStream(ids, streams=3, bptt=3)
    assert stream.streams == 3 and len(stream) == 3 and stream.chars == 24
    rows = [[], [], []]
    for k in range(len(stream)):
        inputs, targets = stream.window(k)
        assert inputs.shape == targets.shape == (3, 3 if k < 2 else 2)
        assert torch.equal(targets[:, :-1], inputs[:, 1:])  # next character
        for i in range(3):
            rows[i].extend(inputs[i].tolist())
    assert rows == [ids[0:8], ids[8:16], ids[16:24]]
    assert stream.window(2)[1][2].tolist() == [ids[23], ids[24]]
    with pytest.raises(IndexError):
        stream.window(3)


def test_too_few_characters_for_the_streams():
    with pytest.raises(DataError, match="lower data.batch_size"):
        CharStream([1, 2, 3], streams=4, bptt=2)
    with pytest.raises(ValueError, match="must be >= 1"):
        CharStream([1, 2, 3], streams=1, bptt=0)
