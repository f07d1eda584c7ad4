"""The Python API: `nmt.load(path)` and what it returns.

    import nmt
    model = nmt.load("runs/de-en/checkpoints/best.pt")   # or an exported model
    model.translate(["Ein Hund rennt.", "Zwei Männer."], beam=5)  # -> 2 strings
    lm = nmt.load("runs/shakespeare/checkpoints/best.pt")
    lm.generate("ROMEO:", max_chars=200, temperature=0.8, seed=1)  # -> a string

The strings are exactly the lines `nmt.translate` and `nmt.generate` print for
the same input and settings (the same batches, search and seed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor

from nmt.inference.generator import TextGenerator, generation_config
from nmt.inference.loading import load_any
from nmt.inference.translator import Translator
from nmt.search import BeamConfig, Hypothesis
from nmt.utils.runtime import pick_device, set_threads
from nmt.utils.text import flatten


@dataclass(frozen=True)
class Translation:
    """One hypothesis with what the search knows about it.

    `score` ranks hypotheses (log_prob over the length penalty); `attention`
    (T, S) has a row per target piece and a column per source piece, or is None
    unless asked for (`translate(..., attention=True)`).
    """

    text: str  # as `nmt.translate` prints it (one line)
    score: float
    log_prob: float
    source_pieces: tuple[str, ...]  # S, as translated (a long line is cut)
    target_pieces: tuple[str, ...]  # T, without EOS
    attention: Tensor | None = None


class TranslationModel:
    """A translation checkpoint ready to translate (what `nmt.load` returns)."""

    kind = "translation"

    def __init__(self, translator: Translator, config: Any) -> None:
        self.translator, self.config = translator, config
        self.src_lang, self.tgt_lang = config.data.src_lang, config.data.tgt_lang

    def translate(
        self,
        lines: str | Sequence[str],
        *,
        beam: int = BeamConfig.beam_size,
        nbest: int = 1,
        len_penalty: float = BeamConfig.len_penalty,
        max_len: int = BeamConfig.max_len,
        batch_size: int = BeamConfig.batch_size,
        details: bool = False,
        attention: bool = False,
    ) -> Any:
        """Translate sentences (one per string) with a beam search of width `beam`.

        Returns, per input line in order: its best translation when nbest is 1,
        else a list of its `nbest` best (fewer when fewer distinct ones exist).
        An item is the text, or a `Translation` when `details` or `attention`
        (which keeps each hypothesis' attention matrix; it costs time). A single
        string in gives a single result out.

        Raises:
            ValueError: settings out of range (beam < 1, nbest > beam, ...).
        """
        single = isinstance(lines, str)
        batch = [lines] if single else list(lines)
        cfg = BeamConfig(
            beam_size=beam,
            nbest=nbest,
            len_penalty=len_penalty,
            max_len=max_len,
            batch_size=batch_size,
        )
        found = self.translator.translate(batch, cfg, attention=attention)
        results = []
        for line, hyps in zip(batch, found, strict=True):
            if details or attention:
                ids = self.translator.encode(line, warn=False)  # once per line
                items = [self._details(ids, h) for h in hyps[:nbest]]
            else:
                items = [self._text(h) for h in hyps[:nbest]]
            results.append(items[0] if nbest == 1 else items)
        return results[0] if single else results

    def _text(self, hyp: Hypothesis) -> str:
        return flatten(self.translator.detokenize(hyp))

    def _details(self, src_ids: list[int], hyp: Hypothesis) -> Translation:
        """`hyp` with the pieces of its source ids and of its tokens."""
        src, tgt = self.translator.labels(src_ids, hyp.tokens)
        return Translation(
            self._text(hyp),
            hyp.score,
            hyp.log_prob,
            tuple(src),
            tuple(tgt),
            hyp.attention,
        )


class GenerationModel:
    """A character LM checkpoint ready to continue text (what `nmt.load` returns)."""

    kind = "lm"

    def __init__(self, generator: TextGenerator, config: Any) -> None:
        self.generator, self.config = generator, config

    def generate(
        self,
        prompt: str = "",
        *,
        max_chars: int = 500,
        temperature: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int | None = None,
        num_samples: int = 1,
        beam: int = 0,
    ) -> str | list[str]:
        """Continue `prompt` by up to `max_chars` characters.

        Samples (temperature 0.8, no top-k/top-p cut unless given; `seed` None
        draws a random one), or runs a beam search of width `beam` when it is > 0
        (then no sampling setting may be given). Returns the continuation without
        the prompt, or a list of `num_samples` of them (beam: the n-best).

        Raises:
            ValueError: settings out of range or sampling settings with a beam.
        """
        cfg = generation_config(
            max_chars=max_chars,
            beam=beam,
            num_samples=num_samples,
            seed=seed,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
        )
        texts = [c.text for c in self.generator.generate(prompt, cfg, max_chars)]
        return texts[0] if num_samples == 1 else texts


def load(
    path: str | Path | Sequence[str | Path],
    *,
    device: str = "auto",
    precision: str = "auto",
    threads: int | None = None,
) -> TranslationModel | GenerationModel:
    """A trained or exported checkpoint, ready to use: a `TranslationModel` for a
    translation checkpoint, a `GenerationModel` for a char LM.

    Args:
        path: best.pt/last.pt of a run, or a file from `nmt.export`/`nmt.average`;
            a list of translation checkpoints sharing one vocabulary: a
            `TranslationModel` decoding with the ensemble of them (the first
            one's config).
        device: "auto" (CUDA when present), "cpu", "cuda", "cuda:N".
        precision: "auto" (bf16 on CPUs with native bf16, else fp32), "fp32",
            "bf16", or "int8" (translation on a CPU).
        threads: torch's intra-op threads for the whole process (0 = all
            cores); None leaves them as they are.

    Raises:
        CheckpointError (a ValueError): a missing, corrupt or foreign file,
            weights that do not fit their config, or ensemble members whose
            tokenizers differ.
    """
    if threads is not None:
        set_threads(threads)
    engine, config = load_any(path, device=pick_device(device), precision=precision)
    if isinstance(engine, TextGenerator):
        return GenerationModel(engine, config)
    return TranslationModel(engine, config)
