"""Char LM data: the char tokenizer, the train/validation cut and the stream/window
layout for TBPTT."""

from __future__ import annotations

import pytest
import torch

from nmt.data.chars import CharStream, CharTokenizer, split_text
from nmt.data.parallel import DataError
from nmt.data.tokenizer import BOS_ID, EOS_ID, PAD_ID, UNK_ID, Tokenizer


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


# -- CharTokenizer -------------------------------------------------------------
def test_char_tokenizer_ids_and_round_trip() -> None:
    tok = CharTokenizer.build("hello world")
    assert isinstance(tok, Tokenizer)
    assert (tok.pad_id, tok.unk_id, tok.bos_id, tok.eos_id) == (0, 1, 2, 3)
    assert tok.chars == sorted(set("hello world"))
    assert tok.vocab_size == 4 + len(set("hello world"))
    ids = tok.encode("hello")
    assert ids == [4 + tok.chars.index(c) for c in "hello"]
    assert tok.decode(ids) == "hello"
    assert tok.encode_batch(["he", "lo"]) == [tok.encode("he"), tok.encode("lo")]


def test_char_tokenizer_unknown_and_specials() -> None:
    tok = CharTokenizer.build("abc")
    assert tok.encode("aXb") == [4, UNK_ID, 5]
    assert tok.decode([BOS_ID, 4, UNK_ID, PAD_ID, 5, EOS_ID, 6]) == "a\u2047b"


def test_char_tokenizer_bytes_round_trip() -> None:
    tok = CharTokenizer.build("Grüße 😀\n")
    again = CharTokenizer.from_bytes(tok.to_bytes())
    assert again.chars == tok.chars
    assert again.encode("Grüße 😀\n") == tok.encode("Grüße 😀\n")
    for bad in (b"\xff\xfe", b'{"a": 1}', b'["ab"]', b'["a", "a"]'):
        with pytest.raises(ValueError):
            CharTokenizer.from_bytes(bad)
