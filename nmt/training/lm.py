"""Character LM training: stateful truncated BPTT over parallel text streams.

The loop itself (limits, checkpoints, exact resume) is `loop.TrainingLoop`; this
module adds the char vocabulary, the streams, the carried hidden state and
validation loss in nats/char and bits/char. Knows nothing of Hydra.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from nmt.data.chars import CharStream, CharTokenizer, split_text
from nmt.data.parallel import DataError
from nmt.data.tokenizer import UNK_ID
from nmt.models.lm import CharLM
from nmt.training.loop import StepLoss, TrainingLoop
from nmt.training.stop import StopRequest
from nmt.utils.io import read_text
from nmt.utils.runtime import autocast

if TYPE_CHECKING:
    from nmt.config import TrainConfig

log = logging.getLogger(__name__)


class LMTrainer(TrainingLoop):
    """Trains a CharLM on `data.path`; batch k is window k of the training streams.

    The hidden state at the end of window k (detached) starts window k+1, so the
    gradient is truncated at window edges but the state is not. It restarts from
    zeros with each epoch and is saved in checkpoints, so resume is exact.
    """

    kind = "lm"
    metric = "val loss"
    tokenizer_keys = ("chars",)

    def __init__(
        self, cfg: TrainConfig, run_dir: Path, *, stop: StopRequest | None = None
    ) -> None:
        self.setup_runtime(cfg, run_dir, stop)
        resume = self.load_resume() if self.loop.resume else None
        self._setup_data(resume)
        self.model = self.build_model(
            lambda: CharLM(cfg.model, vocab_size=self.tokenizer.vocab_size)
        )
        self.hidden: Tensor | None = None  # (N, L, H*) carried to the next window
        self.setup_optimizer(resume)
        if resume is not None:
            with self.resume_errors():
                self._restore_hidden(resume.get("hidden"))

    def _setup_data(self, resume: dict[str, Any] | None) -> None:
        d = self.cfg.data
        if not d.path:
            raise ValueError("task=lm needs data.path=FILE (a UTF-8 text file)")
        if not Path(d.path).is_file():
            raise DataError(f"text file not found: {d.path} (set data.path=FILE)")
        train, val = split_text(read_text(d.path), d.val_fraction)
        if resume is not None:
            with self.resume_errors():
                self.tokenizer = CharTokenizer.from_bytes(resume["tokenizers"]["chars"])
        else:
            self.tokenizer = CharTokenizer.build(train)
        train_ids, val_ids = self.tokenizer.encode(train), self.tokenizer.encode(val)
        self.train_stream = CharStream(train_ids, streams=d.batch_size, bptt=d.bptt)
        streams = max(1, min(d.batch_size, len(val_ids) - 1))
        self.val_stream = CharStream(val_ids, streams=streams, bptt=d.bptt)
        log.info(
            "text %s: train %d chars (%d windows of %d x %d), val %d chars "
            "(%d unknown); vocab %d",
            d.path,
            len(train),
            len(self.train_stream),
            d.batch_size,
            d.bptt,
            len(val),
            val_ids.count(UNK_ID),
            self.tokenizer.vocab_size,
        )

    def _restore_hidden(self, hidden: Tensor | None) -> None:
        if hidden is not None and hidden.size(0) != self.train_stream.streams:
            raise ValueError(
                f"the checkpoint carries {hidden.size(0)} streams, "
                f"data.batch_size is now {self.train_stream.streams}"
            )
        self.hidden = None if hidden is None else hidden.to(self.device)

    # -- loop hooks ---------------------------------------------------------------
    def epoch_batches(self) -> range:
        return range(len(self.train_stream))

    def payload(self) -> dict[str, Any]:
        hidden = None if self.hidden is None else self.hidden.cpu()
        return {
            **self.base_payload(),
            "tokenizers": {"chars": self.tokenizer.to_bytes()},
            "hidden": hidden,
        }

    def train_step(self, window: int) -> float:
        """One optimizer step on window `window`; returns the mean loss per char."""

        def forward() -> StepLoss:
            inputs, targets = self.train_stream.window(window)  # (N, T) each
            inputs, targets = inputs.to(self.device), targets.to(self.device)
            hidden = None if window == 0 else self.hidden  # epochs start from zeros
            loss, hidden = self.model.loss(inputs, targets, hidden)
            # the next window starts here: the gradient is cut, the state is kept
            self.hidden = hidden.detach().float()
            return StepLoss(loss, targets.numel(), targets.numel())

        return self.optimizer_step(forward)

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Loss over the validation streams, state carried across windows.

        Each of the (up to data.batch_size) streams starts from a zero state, which
        overstates the loss of a single pass over the text very slightly.
        """
        self.model.eval()
        total, hidden = 0.0, None
        for k in range(len(self.val_stream)):
            inputs, targets = (t.to(self.device) for t in self.val_stream.window(k))
            with autocast(self.device, self.precision):
                loss, hidden = self.model.loss(inputs, targets, hidden)
            total += float(loss)
        self.model.train()
        loss = total / self.val_stream.chars
        return {
            "val_loss": loss,
            "val_bpc": loss / math.log(2),
            "val_ppl": math.exp(min(loss, 50.0)),
        }

    def is_best(self, metrics: dict[str, float]) -> bool:
        if metrics["val_loss"] >= self.progress.best_loss:
            return False
        self.progress.best_loss = metrics["val_loss"]
        return True

    def describe(self, metrics: dict[str, float]) -> str:
        return (
            f"val loss {metrics['val_loss']:.4f} nats/char "
            f"({metrics['val_bpc']:.3f} bpc, ppl {metrics['val_ppl']:.2f})"
        )

    # -- run ----------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Train until a limit; returns a summary (best val loss in nats/char)."""
        reason, stopped = self.train_until_limit()
        best = self.report.best_val_loss()
        log.info(
            "training stopped (%s) at step %d; best val loss %s nats/char",
            reason,
            self.progress.step,
            "n/a" if best is None else f"{best:.4f}",
        )
        summary = self.base_summary(reason, stopped)
        summary["best_val_bpc"] = None if best is None else round(best / math.log(2), 4)
        summary["vocab_size"] = self.tokenizer.vocab_size
        return summary
