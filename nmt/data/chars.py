"""The character LM's data: its tokenizer (one id per character), one text split
train/validation, cut into N parallel streams and read in windows for truncated BPTT.

Not for parallel text (`parallel.py`). Shapes: N streams, T window length (bptt).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import torch
from torch import Tensor

from nmt.data.parallel import DataError
from nmt.data.tokenizer import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    SPECIAL_PIECES,
    UNK_ID,
    UNK_TEXT,
    strip_specials,
)


class CharTokenizer:
    """One id per character: pad 0, unk 1, bos 2, eos 3, then sorted characters."""

    pad_id, unk_id, bos_id, eos_id = PAD_ID, UNK_ID, BOS_ID, EOS_ID

    def __init__(self, chars: Sequence[str]) -> None:
        """Tokenizer over `chars` (distinct single characters, in id order)."""
        chars = list(chars)
        single = all(isinstance(c, str) and len(c) == 1 for c in chars)
        if not single or len(set(chars)) != len(chars):
            raise ValueError("CharTokenizer needs distinct single characters")
        self.chars = chars
        self._ids = {c: i for i, c in enumerate(chars, start=len(SPECIAL_PIECES))}
        self._chars = {i: c for c, i in self._ids.items()}
        self.vocab_size: int = len(SPECIAL_PIECES) + len(chars)

    @classmethod
    def build(cls, text: str) -> CharTokenizer:
        """Vocabulary of the distinct characters of `text`."""
        return cls(sorted(set(text)))

    @classmethod
    def from_bytes(cls, data: bytes) -> CharTokenizer:
        """Tokenizer from `to_bytes()`; ValueError if not a JSON list of characters."""
        try:
            chars = json.loads(bytes(data).decode("utf-8"))
        except ValueError:  # also UnicodeDecodeError, JSONDecodeError
            chars = None
        if not isinstance(chars, list):
            raise ValueError("not a CharTokenizer vocabulary (JSON list)")
        return cls(chars)

    def to_bytes(self) -> bytes:
        """The character list as UTF-8 JSON."""
        return json.dumps(self.chars, ensure_ascii=False).encode("utf-8")

    def encode(self, text: str) -> list[int]:
        """Ids of the characters of `text` (unseen ones -> UNK), no BOS/EOS."""
        return [self._ids.get(c, UNK_ID) for c in text]

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        """`encode` for each line."""
        return [self.encode(t) for t in texts]

    def decode(self, ids: Sequence[int]) -> str:
        """Text of `ids`; stops at the first EOS, skips PAD/BOS, UNK -> '⁇'."""
        return "".join(self._chars.get(i, UNK_TEXT) for i in strip_specials(ids))


def split_text(text: str, val_fraction: float) -> tuple[str, str]:
    """(train, validation): the first 1 - val_fraction of the characters, the rest."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"data.val_fraction must be in (0, 1), got {val_fraction}")
    cut = len(text) - int(len(text) * val_fraction)
    train, val = text[:cut], text[cut:]
    if len(train) < 2 or len(val) < 2:
        raise DataError(
            f"text of {len(text)} characters is too short to split with "
            f"val_fraction={val_fraction}"
        )
    return train, val


class CharStream:
    """Ids laid out as N streams of consecutive text, read T characters at a time.

    Stream i holds characters [i*M, (i+1)*M) of the text (M = (len - 1) // N, the
    tail is dropped); window k is columns [k*T, (k+1)*T) (the last may be shorter).
    So row i of window k+1 continues row i of window k, and an RNN state carried
    from one window to the next is exact (truncated BPTT, as in char-rnn).
    """

    def __init__(self, ids: Sequence[int], *, streams: int, bptt: int) -> None:
        if streams < 1 or bptt < 1:
            raise ValueError(
                f"data.batch_size and data.bptt must be >= 1, got {streams}, {bptt}"
            )
        length = (len(ids) - 1) // streams  # M characters per stream
        if length < 1:
            raise DataError(
                f"{len(ids)} characters are too few for {streams} streams "
                "(lower data.batch_size)"
            )
        data = torch.tensor(list(ids), dtype=torch.long)
        self.inputs = data[: streams * length].view(streams, length)  # (N, M)
        self.targets = data[1 : streams * length + 1].view(streams, length)  # (N, M)
        self.bptt = bptt

    def __len__(self) -> int:
        """Windows per pass over the streams."""
        return -(-self.inputs.size(1) // self.bptt)

    @property
    def streams(self) -> int:
        return self.inputs.size(0)

    @property
    def chars(self) -> int:
        """Characters predicted per pass (N * M)."""
        return self.targets.numel()

    def window(self, k: int) -> tuple[Tensor, Tensor]:
        """Inputs and next-character targets of window k, each (N, T)."""
        if not 0 <= k < len(self):
            raise IndexError(f"window {k} out of range (0..{len(self) - 1})")
        cols = slice(k * self.bptt, (k + 1) * self.bptt)
        return self.inputs[:, cols], self.targets[:, cols]
