"""Batch translation of raw lines with a Seq2Seq model through the shared search.

Used by the CLI, the evaluator, validation during training and the REPL.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Sequence
from typing import Any, SupportsFloat

import torch

from nmt import fast
from nmt.data.parallel import pad
from nmt.data.tokenizer import UNK_ID, SentencePieceTokenizer
from nmt.fast import weights_key
from nmt.models.seq2seq import Seq2Seq
from nmt.search import BeamConfig, EnsembleStepper, Hypothesis, beam_search
from nmt.search.stepper import inference
from nmt.utils.memory import check_fits
from nmt.utils.runtime import auto_workers, autocast, autocast_dtype, in_workers

# the model's limits when the checkpoint does not say (DataConfig.max_len's default):
# longer sources are cut (with a warning), targets stop at this many subwords
MAX_LEN = 100


class Translator:
    """A model (or an ensemble of models) with its tokenizers, device and precision.

    Several models decode as one (`EnsembleStepper`: their log-probs averaged per
    step); they share the tokenizers, so one source encoding feeds them all.
    """

    def __init__(
        self,
        model: Seq2Seq | Sequence[Seq2Seq],
        src_tok: SentencePieceTokenizer,
        tgt_tok: SentencePieceTokenizer,
        *,
        device: torch.device,
        precision: str = "fp32",
        max_src_len: int = MAX_LEN,
        max_tgt_len: int = MAX_LEN,
    ) -> None:
        """model: one Seq2Seq, or a list of them over the vocabularies of
        `src_tok` and `tgt_tok` (an ensemble). max_src_len, max_tgt_len: the
        longest source and target (subwords) the model was trained on
        (data.max_len); what BeamConfig.max_src_len and max_len mean when they
        are 0."""
        models = [model] if isinstance(model, Seq2Seq) else list(model)
        if not models:
            raise ValueError("a Translator needs at least one model")
        self.models = [m.to(device) for m in models]
        self.model = self.models[0]  # the first: the one a single-model caller sees
        self.src_tok, self.tgt_tok = src_tok, tgt_tok
        self.device, self.precision = device, precision
        self.max_src_len, self.max_tgt_len = max_src_len, max_tgt_len
        # a piece covers at most this many characters: a line longer than
        # max_src_len * this is cut before tokenizing (which takes time per character)
        self.chars_per_token = max(src_tok.longest_piece, 1)
        self.workers_used = 1  # decoding workers of the last `translate` call
        self._stepper: tuple[tuple, Any] | None = None  # (weights key, stepper)

    def encode(
        self,
        line: str,
        index: int | None = None,
        *,
        warn: bool = True,
        max_src_len: int = 0,
    ) -> list[int]:
        """Source ids of `line`, cut at max_src_len (0 = the model's) tokens;
        `warn`s on stderr about unknown characters and the cut (naming line
        index + 1, or "input"). Only the first max_src_len * chars_per_token
        characters are read, so a line's cost is bounded whatever its length."""
        limit = max_src_len or self.max_src_len
        chars = limit * self.chars_per_token
        text = line[:chars]
        ids = self.src_tok.encode(text)
        where = f"line {index + 1}" if index is not None else "input"
        if warn and UNK_ID in ids:
            unknown = "".join(self.src_tok.unknown_chars(text))
            print(
                f"warning: {where} has characters unknown to the model: {unknown!r}",
                file=sys.stderr,
            )
        if warn and len(line) > chars:
            print(
                f"warning: {where} has {len(line)} characters; translating the "
                f"first {min(len(ids), limit)} tokens of its first {chars}",
                file=sys.stderr,
            )
        elif warn and len(ids) > limit:
            print(
                f"warning: {where} has {len(ids)} tokens; translating its first {limit}",
                file=sys.stderr,
            )
        return ids[:limit]

    def translate(
        self,
        lines: Sequence[str],
        cfg: BeamConfig,
        prefix: Sequence[int] | None = None,
        *,
        offset: int | None = 0,
        deadline: SupportsFloat | None = None,
        attention: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> list[list[Hypothesis]]:
        """n-best hypotheses per line, in input order; warnings number the lines
        from offset + 1 (a caller translating a file in chunks passes the lines
        before this chunk), or call each line "input" when offset is None.

        Sources are cut at cfg.max_src_len tokens and targets at cfg.max_len (0 =
        the model's `max_src_len`, `max_tgt_len`). `deadline` (a time.monotonic()
        time) stops the search with what it has (`beam_search`); `attention`
        keeps each hypothesis' attention (for the REPL's table; it costs time).
        `progress(n)` is told of every n lines done (from the decoding threads),
        len(lines) in all.

        Lines are sorted by length inside each window of `cfg.batch_size` * 8 lines
        and decoded `cfg.batch_size` at a time, by `cfg.workers` threads at once
        (`nmt.utils.runtime.in_workers`: a batch decodes the same whichever worker
        runs it, though oneDNN does not promise bitwise equal results across thread
        counts); empty lines get one empty hypothesis. Each worker keeps one
        autocast region for all its batches, so autocast casts each weight to bf16
        once per call, not once per batch.
        """
        ids = [
            self.encode(
                line,
                None if offset is None else offset + i,
                max_src_len=cfg.max_src_len,
            )
            for i, line in enumerate(lines)
        ]
        cfg = dataclasses.replace(cfg, max_len=cfg.max_len or self.max_tgt_len)
        results: list[list[Hypothesis]] = [
            [Hypothesis(tokens=(), log_prob=0.0, score=0.0, attention=None)]
        ] * len(lines)
        todo = [i for i, seq in enumerate(ids) if seq]
        window, size = cfg.batch_size * 8, cfg.batch_size
        batches = []
        for start in range(0, len(todo), window):
            chunk = sorted(todo[start : start + window], key=lambda i: len(ids[i]))
            batches += [chunk[b : b + size] for b in range(0, len(chunk), size)]
        workers = self.workers_used = auto_workers(
            cfg.workers, self.device, len(batches)
        )
        if todo:  # a step holds ~16 float32 (rows, V) tensors at its peak, per worker
            rows = cfg.beam_size * min(cfg.batch_size, len(todo)) * workers
            check_fits(  # and ~2 more per extra model of an ensemble
                rows * self.model.output.out_features * 4 * (14 + 2 * len(self.models)),
                f"decoding {rows} rows (beam {cfg.beam_size} x batch x workers)",
                "use a smaller beam or batch size",
            )
        # eval mode set once here: the workers' searches must not toggle it
        with inference(*self.models):
            stepper = self.stepper()

            def decode(batch: list[int]) -> list[list[Hypothesis]]:
                found = self._decode(
                    stepper,
                    [ids[i] for i in batch],
                    cfg,
                    prefix,
                    deadline=deadline,
                    attention=attention,
                )
                if progress is not None:
                    progress(len(batch))
                return found

            decoded = in_workers(
                decode,
                batches,
                workers,
                lambda: autocast(self.device, self.precision),
            )
        for batch, hyps in zip(batches, decoded, strict=True):
            for i, best in zip(batch, hyps, strict=True):
                results[i] = best
        if progress is not None and len(todo) < len(lines):
            progress(len(lines) - len(todo))  # the empty lines
        return results

    def stepper(self) -> Any:
        """What the search decodes with (`nmt.fast.stepper`; an `EnsembleStepper`
        over one per model for several), rebuilt when the weights have changed
        since the last call (training validates with one Translator)."""
        params = [p for model in self.models for p in model.parameters()]
        key = weights_key(params)
        if self._stepper is None or self._stepper[0] != key:
            dtype = autocast_dtype(self.device, self.precision) or params[0].dtype
            int8 = self.precision == "int8"
            steppers = [
                fast.stepper(model, dtype=dtype, int8=int8) for model in self.models
            ]
            one = steppers[0] if len(steppers) == 1 else EnsembleStepper(steppers)
            self._stepper = (key, one)
        return self._stepper[1]

    def _decode(
        self,
        stepper: Any,
        batch: list[list[int]],
        cfg: BeamConfig,
        prefix: Sequence[int] | None,
        *,
        deadline: SupportsFloat | None,
        attention: bool,
    ) -> list[list[Hypothesis]]:
        src = pad(batch).to(self.device)  # (N, S)
        lengths = torch.tensor([len(s) for s in batch], device=self.device)  # (N,)
        prefixes = [list(prefix)] * len(batch) if prefix else None
        return beam_search(
            stepper,
            (src, lengths),
            lengths,
            cfg,
            prefix=prefixes,
            deadline=deadline,
            keep_attention=attention,
        )

    def labels(
        self, src_ids: Sequence[int], tgt_ids: Sequence[int]
    ) -> tuple[list[str], list[str]]:
        """Each source and target id as its own text: the S column and T row labels
        of an attention (T, S) table or picture."""
        src = [self.src_tok.decode([i]) for i in src_ids]
        return src, [self.tgt_tok.decode([i]) for i in tgt_ids]

    def detokenize(self, hyp: Hypothesis) -> str:
        return self.tgt_tok.decode(list(hyp.tokens))

    def translate_best(
        self,
        lines: Sequence[str],
        cfg: BeamConfig,
        progress: Callable[[int], None] | None = None,
    ) -> list[str]:
        """The best detokenized translation of every line, in order."""
        found = self.translate(lines, cfg, progress=progress)
        return [self.detokenize(hyps[0]) for hyps in found]
