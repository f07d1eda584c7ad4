"""Parallel text loading, length filtering and token-bucketed batches.

Not for tokenizer training (`tokenizer.py`) nor for the char LM stream (`chars.py`).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import torch
from torch import Tensor

from nmt.data.tokenizer import BOS_ID, EOS_ID, PAD_ID, SamplingTokenizer, Tokenizer
from nmt.utils.io import read_lines
from nmt.utils.text import first_line

HUB_SPLITS = {"val": "validation", "valid": "validation", "test_2016_flickr": "test"}


@dataclass
class DataConfig:
    """Where the parallel text lives and how it is batched."""

    # local directory with {split}.{lang} files (Multi30k layout) or a hub dataset name
    root: str = "bentrevett/multi30k"
    src_lang: str = "de"
    tgt_lang: str = "en"
    train_split: str = "train"
    val_split: str = "val"
    test_split: str = "test_2016_flickr"
    # training pairs with more subword tokens than this on either side are dropped
    max_len: int = 100
    # padded target tokens per training batch (sentences x longest target)
    batch_tokens: int = 2000
    # cap on sentences per training batch
    max_sentences: int = 256
    # batches are formed inside pools of this many batches' worth of sorted pairs
    pool_batches: int = 100
    # -- LM only (task=lm): the fields above are for translation ------------------
    # UTF-8 text file the character LM trains on (see chars.py)
    path: str = ""
    # the last this share of the text is validation, the rest trains
    val_fraction: float = 0.1
    # truncated BPTT window: characters per stream in one batch
    bptt: int = 128
    # parallel streams (rows) per batch; row i of batch k+1 continues row i of batch k
    batch_size: int = 64

    def __post_init__(self) -> None:
        """Refuse sizes no batch can be made with before any work starts."""
        for name in (
            "max_len",
            "batch_tokens",
            "max_sentences",
            "pool_batches",
            "bptt",
            "batch_size",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"data.{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(
                f"data.val_fraction must be between 0 and 1, got {self.val_fraction}"
            )


class DataError(Exception):
    """A data problem the user can fix; its message is one line."""


def split_files(root: str | Path, split: str, langs: Sequence[str]) -> list[Path]:
    """Paths `{root}/{split}.{lang}`; DataError naming the first missing one."""
    paths = [Path(root) / f"{split}.{lang}" for lang in langs]
    for path in paths:
        if not path.is_file():
            raise DataError(f"data file not found: {path}")
    return paths


def _hub_reachable(host: str = "huggingface.co", timeout: float = 3.0) -> bool:
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _load_hub(name: str, split: str, langs: Sequence[str]) -> list[list[str]]:
    if not _hub_reachable():
        # fail fast instead of `datasets`' 20 s of retries (the variables must be set before import)
        os.environ["HF_DATASETS_OFFLINE"] = "1"
        os.environ["HF_HUB_OFFLINE"] = "1"
    import datasets

    try:
        table = datasets.load_dataset(name, split=HUB_SPLITS.get(split, split))
    except (ConnectionError, OSError, ValueError) as error:
        reason = first_line(error) or type(error).__name__
        raise DataError(
            f"cannot load '{name}' from the Hugging Face hub ({reason}); "
            "give a local directory instead: data.root=DIR with {split}.{lang} files"
        ) from None
    missing = [lang for lang in langs if lang not in table.column_names]
    if missing:
        raise DataError(
            f"'{name}' on the hub has no {', '.join(missing)} text (its columns: "
            f"{', '.join(table.column_names)}); give a local directory instead: "
            "data.root=DIR with {split}.{lang} files"
        )
    return [list(table[lang][:]) for lang in langs]


def load_parallel(root: str, split: str, langs: Sequence[str]) -> list[list[str]]:
    """Read line-aligned text for each language of `split`.

    Args:
        root: a local directory with `{split}.{lang}` files, or a hub dataset name.
        split: e.g. "train", "val", "test_2016_flickr".
        langs: language codes, e.g. ("de", "en").

    Returns:
        One list of lines per language, all of the same length.
    """
    if Path(root).exists():
        columns = [read_lines(p) for p in split_files(root, split, langs)]
    elif "/" in root and not root.startswith((".", "/")):
        columns = _load_hub(root, split, langs)
    else:
        raise DataError(f"data root not found: {root}")
    counts = {len(c) for c in columns}
    if len(counts) != 1:
        raise DataError(
            f"{split} files of {root} differ in line count: {sorted(counts)}"
        )
    return columns


@dataclass
class Batch:
    """Padded tensors of one batch: src (N, S), src_lengths (N,), tgt_in/tgt_out (N, T)."""

    src: Tensor
    src_lengths: Tensor
    tgt_in: Tensor
    tgt_out: Tensor

    @property
    def num_tgt_tokens(self) -> int:
        return int((self.tgt_out != PAD_ID).sum())

    def to(self, device: torch.device | str) -> Batch:
        return Batch(*(t.to(device, non_blocking=True) for t in vars(self).values()))


def pad(seqs: Sequence[Sequence[int]], pad_id: int = PAD_ID) -> Tensor:
    """(N, max len) long tensor of `seqs` right-padded with `pad_id`."""
    out = torch.full((len(seqs), max((len(s) for s in seqs), default=0)), pad_id)
    for i, seq in enumerate(seqs):
        out[i, : len(seq)] = torch.tensor(seq, dtype=torch.long)
    return out


def collate(src: Sequence[Sequence[int]], tgt: Sequence[Sequence[int]]) -> Batch:
    """Batch from id lists without specials; targets get BOS (input) / EOS (output)."""
    return Batch(
        src=pad(src),
        src_lengths=torch.tensor([len(s) for s in src]),
        tgt_in=pad([[BOS_ID, *t] for t in tgt]),
        tgt_out=pad([[*t, EOS_ID] for t in tgt]),
    )


class ParallelData:
    """Encoded, length-filtered pairs with seeded token-bucketed batching.

    With `sample_alpha` > 0 (subword regularization, training data only) the
    pairs are encoded as the tokenizers segment them best until `resample` gives
    an epoch its own sampled segmentations; the length filter and the batches then
    follow the sampled lengths.
    """

    def __init__(
        self,
        src_lines: Sequence[str],
        tgt_lines: Sequence[str],
        src_tok: Tokenizer,
        tgt_tok: Tokenizer,
        *,
        max_len: int,
        sample_alpha: float = 0.0,
        sample_nbest: int = -1,
    ) -> None:
        """sample_alpha, sample_nbest: `TokenizerConfig`'s; the tokenizers must
        then be `SamplingTokenizer`s."""
        self.max_len = max_len
        self.sample_alpha, self.sample_nbest = sample_alpha, sample_nbest
        self._sides: list[tuple[list[str], SamplingTokenizer]] = []
        if sample_alpha > 0:  # kept for `resample`
            for lines, tok in ((src_lines, src_tok), (tgt_lines, tgt_tok)):
                if not hasattr(tok, "sample_batch"):
                    raise ValueError(f"{type(tok).__name__} cannot sample subwords")
                self._sides.append((list(lines), cast(SamplingTokenizer, tok)))
        self._keep(
            src_tok.encode_batch(list(src_lines)), tgt_tok.encode_batch(list(tgt_lines))
        )

    def _keep(self, src_ids: list[list[int]], tgt_ids: list[list[int]]) -> None:
        """The pairs within the length limits become the data."""
        max_len = self.max_len
        keep = [
            i
            for i, (s, t) in enumerate(zip(src_ids, tgt_ids, strict=True))
            if 0 < len(s) <= max_len and 0 < len(t) < max_len
        ]
        self.src = [src_ids[i] for i in keep]
        self.tgt = [tgt_ids[i] for i in keep]
        self.dropped = len(src_ids) - len(keep)

    def resample(self, *, seed: int, epoch: int) -> None:
        """Re-encode the pairs with segmentations sampled for `epoch`, a pure
        function of (seed, epoch) (so a resumed run gets its epoch's again); the
        length filter is applied anew. Nothing to do without sampling."""
        if not self._sides:
            return
        encoded = []
        for side, (lines, tok) in enumerate(self._sides):
            encoded.append(
                tok.sample_batch(
                    lines,
                    alpha=self.sample_alpha,
                    nbest=self.sample_nbest,
                    seed=(seed * 100_003 + epoch) * 2 + side,
                )
            )
        self._keep(*encoded)

    def __len__(self) -> int:
        return len(self.src)

    def batches(
        self, cfg: DataConfig, *, seed: int, epoch: int, shuffle: bool = True
    ) -> list[list[int]]:
        """Index lists of one epoch's batches; a pure function of (seed, epoch).

        Pairs are shuffled, cut into pools, sorted by length inside each pool and
        cut into batches of at most `cfg.batch_tokens` padded target tokens, so
        batches hold similar lengths (little padding); batch order is shuffled.
        """
        gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
        n = len(self)
        order = torch.randperm(n, generator=gen).tolist() if shuffle else list(range(n))
        avg = max(1, sum(len(t) for t in self.tgt) // max(1, len(self)))
        pool = max(1, cfg.pool_batches * cfg.batch_tokens // avg)
        batches: list[list[int]] = []
        for start in range(0, len(order), pool):
            chunk = sorted(
                order[start : start + pool],
                key=lambda i: (len(self.tgt[i]), len(self.src[i])),
            )
            batches.extend(self._cut(chunk, cfg))
        if shuffle:
            perm = torch.randperm(len(batches), generator=gen).tolist()
            batches = [batches[i] for i in perm]
        return batches

    def _cut(self, sorted_ids: list[int], cfg: DataConfig) -> Iterator[list[int]]:
        batch: list[int] = []
        longest = 0
        for i in sorted_ids:
            length = len(self.tgt[i]) + 1
            grown = max(longest, length)
            if batch and (
                grown * (len(batch) + 1) > cfg.batch_tokens
                or len(batch) >= cfg.max_sentences
            ):
                yield batch
                batch, grown = [], length
            batch.append(i)
            longest = grown
        if batch:
            yield batch

    def collate(self, indices: Sequence[int]) -> Batch:
        return collate([self.src[i] for i in indices], [self.tgt[i] for i in indices])
