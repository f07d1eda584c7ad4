"""Batch translation of raw lines with a Seq2Seq model through the shared search.

Used by the CLI, the evaluator, validation during training and the REPL.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import torch

from nmt import fast
from nmt.data.parallel import pad
from nmt.data.tokenizer import UNK_ID, SentencePieceTokenizer
from nmt.fast import weights_key
from nmt.models.seq2seq import Seq2Seq
from nmt.search import BeamConfig, Hypothesis, beam_search
from nmt.search.stepper import inference
from nmt.utils.memory import check_fits
from nmt.utils.runtime import auto_workers, autocast, autocast_dtype, in_workers

# sentences longer than this many subword tokens are cut (with a warning)
MAX_SRC_TOKENS = 250


class Translator:
    """A model with its tokenizers, device and precision."""

    def __init__(
        self,
        model: Seq2Seq,
        src_tok: SentencePieceTokenizer,
        tgt_tok: SentencePieceTokenizer,
        *,
        device: torch.device,
        precision: str = "fp32",
        max_src_tokens: int = MAX_SRC_TOKENS,
    ) -> None:
        self.model = model.to(device)
        self.src_tok, self.tgt_tok = src_tok, tgt_tok
        self.device, self.precision = device, precision
        self.max_src_tokens = max_src_tokens
        self.workers_used = 1  # decoding workers of the last `translate` call
        self._stepper: tuple[tuple, Any] | None = None  # (weights key, stepper)

    def encode(
        self, line: str, index: int | None = None, *, warn: bool = True
    ) -> list[int]:
        """Source ids of `line`, cut at max_src_tokens; `warn`s on stderr about
        unknown characters and the cut (naming line index + 1, or "input")."""
        ids = self.src_tok.encode(line)
        where = f"line {index + 1}" if index is not None else "input"
        if warn and UNK_ID in ids:
            unknown = "".join(self.src_tok.unknown_chars(line))
            print(
                f"warning: {where} has characters unknown to the model: {unknown!r}",
                file=sys.stderr,
            )
        if warn and len(ids) > self.max_src_tokens:
            print(
                f"warning: {where} has {len(ids)} tokens; "
                f"translating its first {self.max_src_tokens}",
                file=sys.stderr,
            )
        return ids[: self.max_src_tokens]

    def translate(
        self,
        lines: Sequence[str],
        cfg: BeamConfig,
        prefix: Sequence[int] | None = None,
        *,
        offset: int | None = 0,
    ) -> list[list[Hypothesis]]:
        """n-best hypotheses per line, in input order; warnings number the lines
        from offset + 1 (a caller translating a file in chunks passes the lines
        before this chunk), or call each line "input" when offset is None.

        Lines are sorted by length inside each window of `cfg.batch_size` * 8 lines
        and decoded `cfg.batch_size` at a time, by `cfg.workers` threads at once
        (`nmt.utils.runtime.in_workers`: a batch decodes the same whichever worker
        runs it, though oneDNN does not promise bitwise equal results across thread
        counts); empty lines get one empty hypothesis. Each worker keeps one
        autocast region for all its batches, so autocast casts each weight to bf16
        once per call, not once per batch.
        """
        ids = [
            self.encode(line, None if offset is None else offset + i)
            for i, line in enumerate(lines)
        ]
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
            check_fits(
                rows * self.model.output.out_features * 4 * 16,
                f"decoding {rows} rows (beam {cfg.beam_size} x batch x workers)",
                "use a smaller beam or batch size",
            )
        # eval mode set once here: the workers' searches must not toggle it
        with inference(self.model):
            stepper = self.stepper()
            decoded = in_workers(
                lambda batch: self._decode(
                    stepper, [ids[i] for i in batch], cfg, prefix
                ),
                batches,
                workers,
                lambda: autocast(self.device, self.precision),
            )
        for batch, hyps in zip(batches, decoded, strict=True):
            for i, best in zip(batch, hyps, strict=True):
                results[i] = best
        return results

    def stepper(self) -> Any:
        """What the search decodes with (`nmt.fast.stepper`), rebuilt when the
        model's weights have changed since the last call (training validates
        with one Translator)."""
        params = list(self.model.parameters())
        key = weights_key(params)
        if self._stepper is None or self._stepper[0] != key:
            dtype = autocast_dtype(self.device, self.precision) or params[0].dtype
            int8 = self.precision == "int8"
            self._stepper = (key, fast.stepper(self.model, dtype=dtype, int8=int8))
        return self._stepper[1]

    def _decode(
        self,
        stepper: Any,
        batch: list[list[int]],
        cfg: BeamConfig,
        prefix: Sequence[int] | None,
    ) -> list[list[Hypothesis]]:
        src = pad(batch).to(self.device)  # (N, S)
        lengths = torch.tensor([len(s) for s in batch], device=self.device)  # (N,)
        prefixes = [list(prefix)] * len(batch) if prefix else None
        return beam_search(stepper, (src, lengths), lengths, cfg, prefix=prefixes)

    def detokenize(self, hyp: Hypothesis) -> str:
        return self.tgt_tok.decode(list(hyp.tokens))

    def translate_best(self, lines: Sequence[str], cfg: BeamConfig) -> list[str]:
        """The best detokenized translation of every line, in order."""
        return [self.detokenize(hyps[0]) for hyps in self.translate(lines, cfg)]
