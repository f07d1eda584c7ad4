"""Rebuild a trained model and its tokenizers from a self-contained checkpoint.

Translation checkpoints (kind "seq2seq") give a `Translator`, several of them one
`Translator` decoding with all (an ensemble), char LM checkpoints (kind "lm") a
`TextGenerator`; the wrong kind is a one-line CheckpointError.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from nmt.config import TrainConfig, from_dict
from nmt.data.chars import CharTokenizer
from nmt.data.tokenizer import SentencePieceTokenizer
from nmt.inference.generator import TextGenerator
from nmt.inference.translator import Translator
from nmt.models.lm import CharLM
from nmt.models.seq2seq import Seq2Seq
from nmt.training.checkpoint import CheckpointError, load_checkpoint
from nmt.utils.memory import bound_kernel_caches
from nmt.utils.runtime import resolve_precision

Paths = str | Path | Sequence[str | Path]  # one checkpoint, or an ensemble's
KINDS = {
    "seq2seq": "a translation model (use nmt.translate, nmt.evaluate or nmt.repl)",
    "lm": "a character language model (use nmt.generate or nmt.repl)",
}
T = TypeVar("T")


def _check_kind(payload: dict[str, Any], path: str | Path, want: str) -> None:
    kind = payload.get("kind")
    if kind != want:
        what = KINDS.get(str(kind), f"of unknown kind {kind!r}")
        raise CheckpointError(f"{path} is {what}, not {KINDS[want].split(' (')[0]}")


def _rebuild(path: str | Path, build: Callable[[], T]) -> T:
    """`build()`, turning a mismatch between weights and config into one line
    (PyTorch's multi-line state-dict report joined, cut at 400 characters)."""
    try:
        return build()
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        text = " ".join(line.strip() for line in str(error).splitlines())
        text = text.strip() or repr(error)
        text = text if len(text) <= 400 else text[:397] + "..."
        raise CheckpointError(
            f"{path} does not fit its config or vocabulary: {text}"
        ) from None


def _check_finite(path: str | Path, model: nn.Module) -> None:
    """A model with NaN or inf weights decodes nothing useful: refuse it."""
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(
                f"{path} holds non-finite weights (NaN or inf) in {name}"
            )


def _translator(
    payload: dict[str, Any], path: str | Path, device: torch.device, precision: str
) -> tuple[Translator, TrainConfig]:
    def build() -> tuple[Seq2Seq, Any, Any, TrainConfig]:
        cfg: TrainConfig = from_dict(TrainConfig, payload["config"])
        src_tok = SentencePieceTokenizer.from_bytes(payload["tokenizers"]["src"])
        tgt_tok = SentencePieceTokenizer.from_bytes(payload["tokenizers"]["tgt"])
        model = Seq2Seq(
            cfg.model, src_vocab=src_tok.vocab_size, tgt_vocab=tgt_tok.vocab_size
        )
        model.load_state_dict(payload["model"])
        return model, src_tok, tgt_tok, cfg

    model, src_tok, tgt_tok, cfg = _rebuild(path, build)
    _check_finite(path, model)
    model.eval()
    precision = resolve_precision(precision, device, int8=True)
    translator = Translator(
        model,
        src_tok,
        tgt_tok,
        device=device,
        precision=precision,
        max_src_len=cfg.data.max_len,  # the longest pair it was trained on
        max_tgt_len=cfg.data.max_len,
    )
    return translator, cfg


def _generator(
    payload: dict[str, Any], path: str | Path, device: torch.device, precision: str
) -> tuple[TextGenerator, TrainConfig]:
    def build() -> tuple[CharLM, CharTokenizer, TrainConfig]:
        cfg: TrainConfig = from_dict(TrainConfig, payload["config"])
        tokenizer = CharTokenizer.from_bytes(payload["tokenizers"]["chars"])
        model = CharLM(cfg.model, vocab_size=tokenizer.vocab_size)
        model.load_state_dict(payload["model"])
        return model, tokenizer, cfg

    model, tokenizer, cfg = _rebuild(path, build)
    _check_finite(path, model)
    model.eval()
    precision = resolve_precision(precision, device)
    generator = TextGenerator(model, tokenizer, device=device, precision=precision)
    return generator, cfg


def load_translator(
    path: Paths, *, device: torch.device, precision: str = "auto"
) -> tuple[Translator, TrainConfig]:
    """Translator (model in eval mode on `device`) and the config it was trained with.

    Several paths: one Translator decoding with all the models (`ensemble`), and
    the first one's config.

    Raises:
        CheckpointError: missing/corrupt file, not a translation checkpoint,
            weights that do not fit the saved config, or ensemble members with
            other tokenizers.
    """
    bound_kernel_caches()  # a decoding process: before oneDNN first runs
    paths, loaded = checkpoint_paths(path), []
    for one in paths:
        payload = load_checkpoint(one)
        if len(paths) > 1 and payload.get("kind") == "lm":
            raise CheckpointError(
                f"{one} is a character language model: only translation models "
                "decode as an ensemble"
            )
        _check_kind(payload, one, "seq2seq")
        loaded.append((one, *_translator(payload, one, device, precision)))
    return ensemble(loaded)


def checkpoint_paths(path: Paths) -> list[str | Path]:
    """[path], or the paths of an ensemble (CheckpointError when there are none)."""
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    if not paths:
        raise CheckpointError("no checkpoint given")
    return paths


def ensemble(
    loaded: Sequence[tuple[str | Path, Translator, TrainConfig]],
) -> tuple[Translator, TrainConfig]:
    """One Translator over the models of (path, translator, config) triples, with
    the first one's config; one triple: its translator as it is.

    The members must share the target vocabulary (the same pieces in the same
    order: the rows of their output layers) and the source tokenizer (the same
    model, so that one encoding of a line feeds them all); models trained on the
    same data with the same tokenizer.* settings do. Sources and targets are cut
    at the smallest of the members' limits (data.max_len).

    Raises:
        CheckpointError: naming the first member and one whose tokenizers differ.
    """
    (first_path, first, cfg), rest = loaded[0], loaded[1:]
    if not rest:
        return first, cfg
    for path, other, _ in rest:
        mine, theirs = first.tgt_tok.pieces, other.tgt_tok.pieces
        if mine != theirs:
            sizes = f"{len(mine)} and {len(theirs)} pieces"
            if len(mine) == len(theirs):
                sizes = f"{len(mine)} pieces each, not the same"
            raise CheckpointError(
                f"{first_path} and {path} have different target vocabularies "
                f"({sizes}): an ensemble needs one"
            )
        if other.src_tok.to_bytes() != first.src_tok.to_bytes():
            raise CheckpointError(
                f"{first_path} and {path} tokenize the source differently: an "
                "ensemble needs one source tokenizer"
            )
    members = [translator for _, translator, _ in loaded]
    translator = Translator(
        [member.model for member in members],
        first.src_tok,
        first.tgt_tok,
        device=first.device,
        precision=first.precision,
        max_src_len=min(member.max_src_len for member in members),
        max_tgt_len=min(member.max_tgt_len for member in members),
    )
    return translator, cfg


def load_generator(
    path: str | Path, *, device: torch.device, precision: str = "auto"
) -> tuple[TextGenerator, TrainConfig]:
    """TextGenerator (CharLM in eval mode on `device`) and its training config.

    Raises:
        CheckpointError: missing/corrupt file, not an LM checkpoint, or weights
            that do not fit the saved config.
    """
    bound_kernel_caches()  # a decoding process: before oneDNN first runs
    payload = load_checkpoint(path)
    _check_kind(payload, path, "lm")
    return _generator(payload, path, device, precision)


def load_any(
    path: Paths, *, device: torch.device, precision: str = "auto"
) -> tuple[Translator | TextGenerator, TrainConfig]:
    """A Translator or a TextGenerator, whichever the checkpoint holds; several
    paths: an ensemble of translation models (`load_translator`)."""
    bound_kernel_caches()  # a decoding process: before oneDNN first runs
    paths = checkpoint_paths(path)
    if len(paths) > 1:
        return load_translator(paths, device=device, precision=precision)
    payload = load_checkpoint(paths[0])
    if payload.get("kind") == "lm":
        return _generator(payload, paths[0], device, precision)
    _check_kind(payload, paths[0], "seq2seq")
    return _translator(payload, paths[0], device, precision)
