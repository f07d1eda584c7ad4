"""Tokenizers: the `Tokenizer` protocol, cached SentencePiece training, characters.

Not for reading corpora or batching (`data.py`); only text <-> ids.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import sentencepiece as spm

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
SPECIAL_PIECES = ("<pad>", "<unk>", "<s>", "</s>")
MODEL_TYPES = ("unigram", "bpe")
UNK_TEXT = "\u2047"  # what sentencepiece prints for <unk>; CharTokenizer does the same
_TRAIN_THREADS = 2
# sentencepiece rejects input_sentence_size in 1..100
_MIN_SAMPLED_SENTENCES = 101


@dataclass
class TokenizerConfig:
    """How to train the SentencePiece model(s) on the training text."""

    # subword algorithm: unigram | bpe
    model_type: str = "unigram"
    # pieces per model, including the 4 specials (and 256 byte pieces with byte_fallback)
    vocab_size: int = 8000
    # one model on src+tgt training text (shared vocabulary), else one per side
    joint: bool = True
    # share of characters that must be covered; rarer ones become <unk> (or bytes)
    character_coverage: float = 1.0
    # spell unknown characters as UTF-8 byte pieces instead of <unk>
    byte_fallback: bool = False
    # 0 = train on all lines, else a random sample of this many (> 100) lines
    max_sentences: int = 0
    # False lets tiny corpora train with fewer pieces than vocab_size
    hard_vocab_limit: bool = True


@runtime_checkable
class Tokenizer(Protocol):
    """Text <-> ids with fixed special ids: what data, search and CLIs rely on."""

    pad_id: int
    unk_id: int
    bos_id: int
    eos_id: int
    vocab_size: int

    def encode(self, text: str) -> list[int]: ...

    def encode_batch(self, texts: list[str]) -> list[list[int]]: ...

    def decode(self, ids: Sequence[int]) -> str: ...

    def to_bytes(self) -> bytes: ...


def _strip_specials(ids: Sequence[int]) -> list[int]:
    """Ids up to the first EOS, without PAD and BOS."""
    out = []
    for i in ids:
        i = int(i)
        if i == EOS_ID:
            break
        if i not in (PAD_ID, BOS_ID):
            out.append(i)
    return out


class SentencePieceTokenizer:
    """A trained SentencePiece model with ids pad 0, unk 1, bos 2, eos 3."""

    pad_id, unk_id, bos_id, eos_id = PAD_ID, UNK_ID, BOS_ID, EOS_ID

    def __init__(self, model_proto: bytes) -> None:
        """Load a serialized model (see `from_bytes`, which is the same)."""
        self._proto = bytes(model_proto)
        try:
            self._sp = spm.SentencePieceProcessor(model_proto=self._proto)
        except RuntimeError:
            raise ValueError("not a valid sentencepiece model") from None
        pieces = tuple(self._sp.id_to_piece(i) for i in range(4))
        if pieces != SPECIAL_PIECES:
            raise ValueError(
                f"sentencepiece model has special pieces {pieces}, "
                f"expected {SPECIAL_PIECES} as ids 0-3"
            )
        self.vocab_size: int = self._sp.get_piece_size()

    @classmethod
    def from_bytes(cls, model_proto: bytes) -> SentencePieceTokenizer:
        """Tokenizer from `to_bytes()` output (a serialized ModelProto).

        Raises:
            ValueError: not a sentencepiece model, or other special ids.
        """
        return cls(model_proto)

    def to_bytes(self) -> bytes:
        """The serialized model, as stored in checkpoints."""
        return self._proto

    def encode(self, text: str) -> list[int]:
        """Subword ids of `text`, without BOS/EOS."""
        return self._sp.encode(text)

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        """`encode` for many lines at once (faster than a loop)."""
        return self._sp.encode(list(texts))

    def decode(self, ids: Sequence[int]) -> str:
        """Text of `ids`; stops at the first EOS and skips PAD/BOS."""
        return self._sp.decode(_strip_specials(ids))

    def unknown_chars(self, text: str) -> list[str]:
        """Distinct characters of `text` that encode to <unk>, sorted."""
        pieces = self._sp.encode(text, out_type=str)
        unknown = {
            char
            for i, piece in zip(self._sp.encode(text), pieces)
            if i == UNK_ID
            for char in piece.replace("\u2581", "")
        }
        return sorted(unknown)

    def unknown_fraction(self, text: str) -> float:
        """Share of the non-space characters of `text` that become <unk>."""
        pieces = self._sp.encode(text, out_type=str)
        unknown = sum(
            len(piece.replace("\u2581", ""))
            for i, piece in zip(self._sp.encode(text), pieces)
            if i == UNK_ID
        )
        total = sum(not c.isspace() for c in text)
        return min(1.0, unknown / total) if total else 0.0

    def __repr__(self) -> str:
        return f"SentencePieceTokenizer(vocab_size={self.vocab_size})"


# -- training ----------------------------------------------------------------
def check_config(cfg: TokenizerConfig) -> None:
    """Raise ValueError (one line) for settings sentencepiece would reject."""
    if cfg.model_type not in MODEL_TYPES:
        raise ValueError(
            f"tokenizer.model_type must be one of {', '.join(MODEL_TYPES)}, "
            f"not {cfg.model_type!r}"
        )
    if cfg.vocab_size <= len(SPECIAL_PIECES):
        raise ValueError(f"tokenizer.vocab_size must be > 4, not {cfg.vocab_size}")
    if not 0.0 < cfg.character_coverage <= 1.0:
        raise ValueError(
            "tokenizer.character_coverage must be in (0, 1], "
            f"not {cfg.character_coverage}"
        )
    if cfg.max_sentences < 0 or 0 < cfg.max_sentences < _MIN_SAMPLED_SENTENCES:
        raise ValueError(
            "tokenizer.max_sentences must be 0 (all lines) or at least "
            f"{_MIN_SAMPLED_SENTENCES}, not {cfg.max_sentences}"
        )


def _train_options(cfg: TokenizerConfig) -> dict[str, object]:
    options: dict[str, object] = dict(
        model_type=cfg.model_type,
        vocab_size=cfg.vocab_size,
        character_coverage=cfg.character_coverage,
        byte_fallback=cfg.byte_fallback,
        hard_vocab_limit=cfg.hard_vocab_limit,
        normalization_rule_name="nmt_nfkc",
        pad_id=PAD_ID,
        unk_id=UNK_ID,
        bos_id=BOS_ID,
        eos_id=EOS_ID,
        pad_piece=SPECIAL_PIECES[PAD_ID],
        unk_piece=SPECIAL_PIECES[UNK_ID],
        bos_piece=SPECIAL_PIECES[BOS_ID],
        eos_piece=SPECIAL_PIECES[EOS_ID],
        minloglevel=2,
        num_threads=_TRAIN_THREADS,
    )
    if cfg.max_sentences:
        options.update(
            input_sentence_size=cfg.max_sentences, shuffle_input_sentence=True
        )
    return options


def _cache_key(files: Sequence[Path], options: dict[str, object]) -> str:
    digest = hashlib.sha256()
    digest.update(f"sentencepiece {spm.__version__}\n".encode())
    digest.update(json.dumps(options, sort_keys=True).encode())
    for path in files:
        file_digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                file_digest.update(block)
        digest.update(b"\nfile " + file_digest.digest())
    return digest.hexdigest()[:24]


def _lines(files: Sequence[Path]) -> Iterator[str]:
    # an iterator, not `input=a,b`, so paths may contain commas
    for path in files:
        with open(path, encoding="utf-8") as f:
            try:
                for line in f:
                    yield line.rstrip("\r\n")
            except UnicodeDecodeError as error:
                raise ValueError(f"{path} is not UTF-8 text ({error.reason})") from None


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    f = open(tmp, "xb")
    try:
        with f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _sentencepiece_message(error: Exception, cfg: TokenizerConfig) -> str:
    # "INTERNAL: src/x.cc(638) [condition] Human text." -> "Human text."
    text = " ".join(str(error).split())
    human = re.sub(r"^[A-Z_]+: \S+\(\d+\) \[[^\]]*\]\s*", "", text) or text
    if "sentences_.empty()" in text:
        human = "the training files hold no text"
    hint = " (byte_fallback adds 256 byte pieces)" if cfg.byte_fallback else ""
    return (
        f"sentencepiece could not train a {cfg.model_type} model with "
        f"vocab_size={cfg.vocab_size}{hint}: {human}"
    )


def train_sentencepiece(
    files: Sequence[Path], cfg: TokenizerConfig, cache_dir: Path
) -> bytes:
    """Train (or fetch from the cache) a SentencePiece model on `files`.

    The model is cached as `cache_dir/spm-<hash>.model`, where the hash covers the
    bytes of every input file, the training options and the sentencepiece version.

    Args:
        files: UTF-8 text files, one sentence per line.
        cfg: training settings.
        cache_dir: directory for cached models (created if missing).

    Returns:
        The serialized model (for `SentencePieceTokenizer.from_bytes`).

    Raises:
        ValueError: bad settings, or sentencepiece refused the data (one line).
        FileNotFoundError: an input file is missing.
    """
    check_config(cfg)
    files = [Path(f) for f in files]
    if not files:
        raise ValueError("train_sentencepiece needs at least one input file")
    options = _train_options(cfg)
    cache_dir = Path(cache_dir)
    path = cache_dir / f"spm-{_cache_key(files, options)}.model"
    if path.is_file():
        return path.read_bytes()
    buffer = io.BytesIO()
    if cfg.max_sentences:
        spm.set_random_generator_seed(0)  # the same sample on every machine
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=_lines(files), model_writer=buffer, **options
        )
    except RuntimeError as error:
        raise ValueError(_sentencepiece_message(error, cfg)) from None
    cache_dir.mkdir(parents=True, exist_ok=True)
    _write_atomic(path, buffer.getvalue())
    return buffer.getvalue()


def build_tokenizers(
    src_files: Sequence[Path],
    tgt_files: Sequence[Path],
    cfg: TokenizerConfig,
    cache_dir: Path,
) -> tuple[SentencePieceTokenizer, SentencePieceTokenizer]:
    """Source and target tokenizers trained on the training text.

    Args:
        src_files: source-side training text files.
        tgt_files: target-side training text files.
        cfg: training settings; `cfg.joint` trains one model on both sides.
        cache_dir: where trained models are cached.

    Returns:
        (src, tgt); with `cfg.joint` the same object twice.
    """
    if cfg.joint:
        joint = train_sentencepiece([*src_files, *tgt_files], cfg, cache_dir)
        tokenizer = SentencePieceTokenizer.from_bytes(joint)
        return tokenizer, tokenizer
    src = train_sentencepiece(src_files, cfg, cache_dir)
    tgt = train_sentencepiece(tgt_files, cfg, cache_dir)
    return SentencePieceTokenizer.from_bytes(src), SentencePieceTokenizer.from_bytes(
        tgt
    )


# -- characters (for the char LM) --------------------------------------------
class CharTokenizer:
    """One id per character: pad 0, unk 1, bos 2, eos 3, then sorted characters."""

    pad_id, unk_id, bos_id, eos_id = PAD_ID, UNK_ID, BOS_ID, EOS_ID

    def __init__(self, chars: Sequence[str]) -> None:
        """Tokenizer over `chars` (distinct single characters, in id order)."""
        chars = list(chars)
        if any(not isinstance(c, str) or len(c) != 1 for c in chars):
            raise ValueError("CharTokenizer chars must be single characters")
        if len(set(chars)) != len(chars):
            raise ValueError("CharTokenizer chars must be distinct")
        self.chars = chars
        self._ids = {c: i for i, c in enumerate(chars, start=len(SPECIAL_PIECES))}
        self.vocab_size: int = len(SPECIAL_PIECES) + len(chars)

    @classmethod
    def build(cls, text: str) -> CharTokenizer:
        """Vocabulary of the distinct characters of `text`."""
        return cls(sorted(set(text)))

    @classmethod
    def from_bytes(cls, data: bytes) -> CharTokenizer:
        """Tokenizer from `to_bytes()` output (UTF-8 JSON list of characters).

        Raises:
            ValueError: not such a list.
        """
        try:
            chars = json.loads(bytes(data).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ValueError("not a CharTokenizer vocabulary (JSON list)") from None
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
        offset = len(SPECIAL_PIECES)
        return "".join(
            UNK_TEXT if i == UNK_ID or not offset <= i < self.vocab_size
            else self.chars[i - offset]
            for i in _strip_specials(ids)
        )

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size})"
