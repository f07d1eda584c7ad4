"""The `Tokenizer` protocol, its special ids and cached SentencePiece training.

Only text <-> ids; not for reading corpora or batching (`parallel.py`), nor the char
LM's tokenizer (`chars.py`)."""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import sentencepiece as spm

from nmt.utils.io import atomic_write, read_lines

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
SPECIAL_PIECES = ("<pad>", "<unk>", "<s>", "</s>")
MODEL_TYPES = ("unigram", "bpe")
UNK_TEXT = "\u2047"  # what sentencepiece prints for <unk>; CharTokenizer does the same


@dataclass
class TokenizerConfig:
    """How to train the SentencePiece model(s) on the training text."""

    # subword algorithm: unigram | bpe
    model_type: str = "unigram"
    # pieces per model, counting the 4 specials (and 256 bytes with byte_fallback)
    vocab_size: int = 8000
    # one model on src+tgt training text (shared vocabulary), else one per side
    joint: bool = True
    # share of characters that must be covered; rarer ones become <unk> (or bytes)
    character_coverage: float = 1.0
    # spell unknown characters as UTF-8 byte pieces instead of <unk>
    byte_fallback: bool = False
    # joint only: the target side keeps just the pieces its training text uses, so
    # the output layer has no rows for source-only pieces (de+en 8k joint: ~4k
    # left); with sample_alpha also its characters (sampling may split any piece)
    restrict_tgt: bool = True
    # 0 = train on all lines, else a random sample of this many (> 100) lines
    max_sentences: int = 0
    # False lets tiny corpora train with fewer pieces than vocab_size
    hard_vocab_limit: bool = True
    # subword regularization: the training pairs' segmentations are sampled anew
    # each epoch (never for validation, test or translation); 0 = off. unigram:
    # the smoothing alpha of the sampling distribution p(x)^alpha (Kudo 2018; 0.1
    # to 0.5, smaller samples more varied segmentations); bpe: the BPE-dropout
    # probability of each merge (Provilkov et al. 2020; 0.1), below 1
    sample_alpha: float = 0.0
    # unigram: sample among the n best segmentations; -1 = all of them (the
    # lattice), else >= 2. bpe: not used
    sample_nbest: int = -1

    def __post_init__(self) -> None:
        """Refuse sampling settings SentencePiece cannot honour (one line)."""
        alpha, bpe = self.sample_alpha, self.model_type == "bpe"
        if not (math.isfinite(alpha) and 0 <= alpha and (alpha < 1 or not bpe)):
            need = "in [0, 1) for bpe (the dropout probability)" if bpe else ">= 0"
            raise ValueError(f"tokenizer.sample_alpha must be {need}, got {alpha}")
        if self.sample_nbest != -1 and self.sample_nbest < 2:
            raise ValueError(
                "tokenizer.sample_nbest must be -1 (all segmentations) or >= 2, "
                f"got {self.sample_nbest}"
            )


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


class SamplingTokenizer(Tokenizer, Protocol):
    """A `Tokenizer` that can also sample segmentations (subword regularization)."""

    def sample_batch(
        self, texts: list[str], *, alpha: float, nbest: int, seed: int
    ) -> list[list[int]]: ...


def strip_specials(ids: Sequence[int]) -> list[int]:
    """Ids up to the first EOS, without PAD and BOS (what every tokenizer decodes)."""
    ids = [int(i) for i in ids]
    ids = ids[: ids.index(EOS_ID)] if EOS_ID in ids else ids
    return [i for i in ids if i not in (PAD_ID, BOS_ID)]


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
            raise ValueError(f"special pieces {pieces} are not {SPECIAL_PIECES}")
        # a model from `restrict_pieces` marks the pieces it never uses as unused;
        # ids are then positions among the used pieces (no gaps for the model)
        size = self._sp.get_piece_size()
        used = [i for i in range(size) if not self._sp.is_unused(i)]
        self._piece_ids: list[int] | None = used if len(used) < size else None
        self._ids = [UNK_ID] * size  # piece id -> compact id (restricted models)
        for compact, piece_id in enumerate(self._piece_ids or ()):
            self._ids[piece_id] = compact
        self.vocab_size: int = len(used)
        # characters of the longest piece (its word-start mark counts as one)
        self.longest_piece: int = max(len(self._sp.id_to_piece(i)) for i in used)

    @classmethod
    def from_bytes(cls, model_proto: bytes) -> SentencePieceTokenizer:
        """Tokenizer from `to_bytes()`; ValueError if not a model with our specials."""
        return cls(model_proto)

    def to_bytes(self) -> bytes:
        """The serialized model, as stored in checkpoints."""
        return self._proto

    @property
    def pieces(self) -> tuple[str, ...]:
        """The vocabulary: the piece of each id, in id order."""
        ids = self._piece_ids or range(self._sp.get_piece_size())
        return tuple(self._sp.id_to_piece(i) for i in ids)

    def encode(self, text: str) -> list[int]:
        """Subword ids of `text`, without BOS/EOS."""
        ids = self._sp.encode(text)
        return ids if self._piece_ids is None else [self._ids[i] for i in ids]

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        """`encode` for many lines at once (faster than a loop)."""
        return self._compact(self._sp.encode(list(texts)))

    def sample_batch(
        self, texts: list[str], *, alpha: float, nbest: int, seed: int
    ) -> list[list[int]]:
        """`encode_batch` with each line's segmentation sampled: unigram models
        sample among the `nbest` best (-1: all) with smoothing `alpha`, BPE models
        drop each merge with probability `alpha` (BPE-dropout).

        A pure function of (texts, alpha, nbest, seed): SentencePiece's random
        generator is process-wide, so this seeds it and encodes on one thread, in
        order (not while another thread samples). Its seeds are 32-bit, and
        2**32 - 1 means "from the clock": `seed` is taken mod 2**32 - 1.
        """
        spm.set_random_generator_seed(seed % (2**32 - 1))
        rows = self._sp.encode(
            list(texts),
            enable_sampling=True,
            alpha=alpha,
            nbest_size=nbest,
            num_threads=1,
        )
        return self._compact(rows)

    def _compact(self, rows: list[list[int]]) -> list[list[int]]:
        """Piece ids -> our ids (the same unless the model is restricted)."""
        if self._piece_ids is None:
            return rows
        table = self._ids
        return [[table[i] for i in ids] for ids in rows]

    def decode(self, ids: Sequence[int]) -> str:
        """Text of `ids`; stops at the first EOS and skips PAD/BOS."""
        ids = strip_specials(ids)
        if self._piece_ids is not None:
            pieces, size = self._piece_ids, len(self._piece_ids)
            ids = [pieces[i] if 0 <= i < size else UNK_ID for i in ids]
        return self._sp.decode(ids)

    def _unknown_text(self, text: str) -> str:
        ids, pieces = self._sp.encode(text), self._sp.encode(text, out_type=str)
        return "".join(
            p.replace("\u2581", "") for i, p in zip(ids, pieces) if i == UNK_ID
        )

    def unknown_chars(self, text: str) -> list[str]:
        """Distinct characters of `text` that encode to <unk>, sorted."""
        return sorted(set(self._unknown_text(text)))

    def unknown_fraction(self, text: str) -> float:
        """Share of the non-space characters of `text` that become <unk>."""
        total = sum(not c.isspace() for c in text)
        return min(1.0, len(self._unknown_text(text)) / total) if total else 0.0


def check_config(cfg: TokenizerConfig) -> None:
    """Raise ValueError (one line) for settings sentencepiece would reject."""
    sampled = cfg.max_sentences == 0 or cfg.max_sentences > 100  # spm: not 1..100
    rules = {  # field: (valid, what it must be)
        "model_type": (cfg.model_type in MODEL_TYPES, " or ".join(MODEL_TYPES)),
        "vocab_size": (cfg.vocab_size > len(SPECIAL_PIECES), "> 4"),
        "character_coverage": (0 < cfg.character_coverage <= 1, "in (0, 1]"),
        "max_sentences": (sampled, "0 (all lines) or > 100"),
    }
    for name, (valid, need) in rules.items():
        if not valid:
            raise ValueError(f"tokenizer.{name}={vars(cfg)[name]!r} must be {need}")


def _train_options(cfg: TokenizerConfig) -> dict[str, object]:
    names = "model_type vocab_size character_coverage byte_fallback hard_vocab_limit"
    options: dict[str, object] = {name: getattr(cfg, name) for name in names.split()}
    for i, name in enumerate(("pad", "unk", "bos", "eos")):
        options.update({f"{name}_id": i, f"{name}_piece": SPECIAL_PIECES[i]})
    options.update(normalization_rule_name="nmt_nfkc", minloglevel=2, num_threads=2)
    if size := cfg.max_sentences:
        options.update(input_sentence_size=size, shuffle_input_sentence=True)
    return options


def _cache_key(files: Sequence[Path], options: dict[str, object]) -> str:
    digest = hashlib.sha256()
    digest.update(f"sentencepiece {spm.__version__}\n".encode())
    digest.update(json.dumps(options, sort_keys=True).encode())
    for path in files:  # sentencepiece reads whole corpora into memory anyway
        digest.update(b"\nfile " + hashlib.sha256(Path(path).read_bytes()).digest())
    return digest.hexdigest()[:24]


def _lines(files: Sequence[Path]) -> Iterator[str]:
    # an iterator, not `input=a,b`, so paths may contain commas
    for path in files:
        yield from read_lines(path)


def _sentencepiece_message(error: Exception, cfg: TokenizerConfig) -> str:
    # "INTERNAL: src/x.cc(638) [condition] Human text." -> "Human text."
    text = " ".join(str(error).split())
    human = re.sub(r"^[A-Z_]+: \S+\(\d+\) \[[^\]]*\]\s*", "", text) or text
    if "sentences_.empty()" in text:
        human = "the training files hold no text"
    hint = " (byte_fallback adds 256 byte pieces)" if cfg.byte_fallback else ""
    model = f"a {cfg.model_type} model with vocab_size={cfg.vocab_size}{hint}"
    return f"sentencepiece could not train {model}: {human}"


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
    atomic_write(path, buffer.getvalue())
    return buffer.getvalue()


def build_tokenizers(
    src_files: Sequence[Path],
    tgt_files: Sequence[Path],
    cfg: TokenizerConfig,
    cache_dir: Path,
) -> tuple[SentencePieceTokenizer, SentencePieceTokenizer]:
    """(src, tgt) tokenizers trained on each side's text files, cached in `cache_dir`.

    With `cfg.joint`: one model on both sides, returned twice (the same object),
    or with `cfg.restrict_tgt` the target side limited to the pieces of its own
    training text (`restrict_pieces`; with `cfg.sample_alpha` also to the
    characters of that text, so that sampled segmentations never need <unk>)."""
    if cfg.joint:
        joint = train_sentencepiece([*src_files, *tgt_files], cfg, cache_dir)
        tokenizer = SentencePieceTokenizer(joint)
        if not cfg.restrict_tgt:
            return tokenizer, tokenizer
        chars = cfg.sample_alpha > 0
        restricted = restrict_pieces(joint, tgt_files, keep_chars=chars)
        return tokenizer, SentencePieceTokenizer(restricted)
    src = SentencePieceTokenizer(train_sentencepiece(src_files, cfg, cache_dir))
    return src, SentencePieceTokenizer(train_sentencepiece(tgt_files, cfg, cache_dir))


def restrict_pieces(
    model_proto: bytes, files: Sequence[Path], *, keep_chars: bool = False
) -> bytes:
    """The model with every normal piece that never occurs in `files` marked unused.

    SentencePiece never segments into unused pieces, so text is encoded with the
    pieces of `files` only; `files` themselves encode exactly as before (their
    best segmentations use only those pieces). Special and byte pieces are kept.
    Editing the model needs protobuf (sentencepiece's own `sentencepiece_model_pb2`).

    Args:
        model_proto: a serialized SentencePiece model (e.g. a joint one).
        files: UTF-8 text files, one sentence per line (e.g. the target side).
        keep_chars: also keep the one-character pieces of every character of
            `files` (their pieces' characters): a sampled segmentation (subword
            regularization) may split a piece into pieces the best never uses,
            down to characters, and without them it would need <unk>.

    Returns:
        The serialized restricted model (for `SentencePieceTokenizer`).
    """
    from sentencepiece import sentencepiece_model_pb2 as model_pb2

    processor = spm.SentencePieceProcessor(model_proto=model_proto)
    seen: set[int] = set()
    for ids in processor.encode(list(_lines(files))):
        seen.update(ids)
    if keep_chars:
        pieces = [processor.id_to_piece(i) for i in seen if i != UNK_ID]
        chars = {c for piece in pieces for c in piece}
        seen.update(processor.piece_to_id(c) for c in chars)  # unk if not a piece
    model = model_pb2.ModelProto()
    model.ParseFromString(model_proto)
    kinds = model_pb2.ModelProto.SentencePiece
    for i, piece in enumerate(model.pieces):
        if piece.type == kinds.NORMAL and i not in seen:
            piece.type = kinds.UNUSED
    return model.SerializeToString()
