"""The training loop shared by translation and the char LM: the optimizer step,
limits, signals, periodic validation, metrics.jsonl and checkpoints (exact resume).

Task-specific work (data, model, the loss of a batch, validation) lives in the
subclasses in `seq2seq.py` and `lm.py`. Knows nothing of Hydra. A little over 300
lines: the step, the loop and the checkpoints together fix the order in which
random numbers are drawn (exact resume), so they are read in one file.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import torch
from torch import Tensor
from tqdm import tqdm

from nmt.training.checkpoint import (
    check_resumable,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from nmt.training.distributed import Distributed
from nmt.training.progress import (
    Progress,
    after_validation,
    append_metrics,
    forget_metrics_after,
    limit_reached,
    read_metrics,
    schedule_lr,
)
from nmt.training.stop import StopRequest
from nmt.utils.runtime import (
    autocast,
    pick_device,
    resolve_precision,
    set_seed,
    set_threads,
)

if TYPE_CHECKING:
    from nmt.config import TrainConfig

log = logging.getLogger(__name__)


class StepLoss(NamedTuple):
    """A trainer's forward pass over one batch, as `optimizer_step` needs it."""

    loss: Tensor  # summed loss of this rank's share of the batch (a scalar)
    tokens: int  # target tokens (LM: characters) in this rank's share
    total: int  # target tokens in the whole batch, summed over the ranks


class TrainingLoop:
    """Epochs of batches with periodic validation, checkpoints and limits.

    Subclasses build data and `model` in `__init__` (after `setup_runtime`, before
    `setup_optimizer`) and implement the hooks `epoch_batches`, `train_step` (with
    `optimizer_step`), `validate`, `is_best`, `describe` and `payload`.
    """

    kind = ""  # checkpoint kind: "seq2seq" | "lm"
    metric = ""  # what early stopping watches, for messages: "val BLEU"
    model: Any
    optimizer: torch.optim.Optimizer
    progress: Progress

    def setup_runtime(self, cfg: TrainConfig, run_dir: Path) -> None:
        """Directories, threads, device, precision and the seed."""
        self.cfg, self.loop = cfg, cfg.train
        self.run_dir = Path(run_dir)
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.threads = set_threads(self.loop.threads)
        self.dist = Distributed.from_env()
        self.device = self.dist.init(pick_device(self.loop.device))
        if not self.dist.is_main:  # rank 0 alone logs and writes files
            logging.getLogger("nmt").setLevel(logging.WARNING)
        self.precision = resolve_precision(self.loop.precision, self.device)
        set_seed(self.loop.seed)

    def setup_optimizer(self, resume: dict[str, Any] | None) -> None:
        """Adam over `model`, progress from zero, then the states of `resume`."""
        self.optimizer = torch.optim.Adam(
            self.model.parameters(),
            lr=self.loop.lr,
            weight_decay=self.loop.weight_decay,
        )
        self.progress = Progress(lr=self.loop.lr)
        if resume is not None:
            self.restore(resume)

    # -- hooks ------------------------------------------------------------------
    def epoch_batches(self) -> Sequence[Any]:
        """All batches of epoch `progress.epoch`, in training order."""
        raise NotImplementedError

    def train_step(self, batch: Any) -> float:
        """One optimizer step; returns the mean loss per target token."""
        raise NotImplementedError

    def validate(self) -> dict[str, float]:
        """Validation metrics; must include "val_loss"."""
        raise NotImplementedError

    def is_best(self, metrics: dict[str, float]) -> bool:
        """Whether `metrics` beat the best so far (and record them as the best)."""
        raise NotImplementedError

    def describe(self, metrics: dict[str, float]) -> str:
        """One-line summary of `metrics` for the log."""
        raise NotImplementedError

    def payload(self) -> dict[str, Any]:
        """Everything a checkpoint holds (see `base_payload`)."""
        raise NotImplementedError

    # -- checkpoints --------------------------------------------------------------
    def base_payload(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "config": dataclasses.asdict(self.cfg),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "progress": dataclasses.asdict(self.progress),
            "rng": rng_state(),
            "rng_ranks": getattr(self, "_rng_ranks", None),
        }

    def load_resume(self) -> dict[str, Any] | None:
        """last.pt of the run dir (None if absent); refuses another kind or model."""
        path = self.ckpt_dir / "last.pt"
        if not path.exists():
            log.warning("train.resume=true but %s does not exist: starting fresh", path)
            return None
        payload = load_checkpoint(path)
        check_resumable(payload, path, self.kind, dataclasses.asdict(self.cfg.model))
        return payload

    def restore(self, payload: dict[str, Any]) -> None:
        """Model, optimizer, progress and RNG states from a `payload()`."""
        self.model.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.progress = Progress(**payload["progress"])
        ranks = payload.get("rng_ranks")
        if self.dist.enabled and ranks and len(ranks) == self.dist.world:
            set_rng_state(ranks[self.dist.rank])
        else:
            set_rng_state(payload["rng"])
        p = self.progress
        log.info("resumed at step %d (epoch %d, batch %d)", p.step, p.epoch, p.batch)
        if self.dist.is_main and (
            dropped := forget_metrics_after(self.run_dir, p.step)
        ):
            log.info(
                "metrics.jsonl: %d validation(s) after step %d to redo", dropped, p.step
            )

    # -- one step ------------------------------------------------------------------
    def optimizer_step(self, forward: Callable[[], StepLoss]) -> float:
        """One optimizer step around `forward()`, a trainer's loss of one batch.

        Sets the scheduled learning rate, clears the gradients, runs `forward`
        under autocast, backpropagates the loss as a mean over the batch's tokens,
        clips and steps. Returns the mean loss per token of this rank's share.
        """
        began = time.perf_counter()
        lr = schedule_lr(self.loop, self.progress)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.progress.lr = lr
        self.optimizer.zero_grad(set_to_none=True)
        with autocast(self.device, self.precision):
            step = forward()
        # DDP averages gradients over ranks: scaled so the sum is d(loss)/total
        (step.loss * (self.dist.world / step.total)).backward()
        if self.loop.clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.loop.clip_norm)
        self.optimizer.step()
        self.progress.step += 1
        self.progress.tokens += step.total
        loss = float(step.loss.detach()) / step.tokens  # syncs: the timing is true
        self.progress.train_seconds += time.perf_counter() - began
        return loss

    # -- the loop -------------------------------------------------------------------
    def train_until_limit(self) -> tuple[str, bool]:
        """Train until a limit or a signal; returns (reason, stopped by signal).

        Ends with last.pt (and metrics/best.pt when a validation is due) written.
        """
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.dist.is_main:  # temporary files of writes a kill interrupted
            for stray in self.ckpt_dir.glob(".*.tmp"):
                stray.unlink(missing_ok=True)
        self.model.train()
        p = self.progress
        log.info(
            "model %d parameters; %d threads, %s, %s",
            self.model.num_parameters(),
            self.threads,
            self.device,
            self.precision,
        )
        self._clock = time.time() - p.elapsed
        self._rate = 0.0
        self._halt = False
        bar = tqdm(
            total=self.loop.max_steps or None,
            initial=p.step,
            file=sys.stderr,
            unit="step",
            disable=not sys.stderr.isatty(),
            dynamic_ncols=True,
        )
        with StopRequest() as stop:
            reason = self.limits_reached()
            while reason is None and not stop.requested and not self._halt:
                self._train_epoch(bar, stop)
                reason = self.limits_reached()
            stopped = self.dist.any(stop.requested, self.device)
        bar.close()
        if stopped:
            reason = "stopped by signal"
            self.save_last()
        elif not self.dist.from_main(self.just_validated()):
            self.validate_and_save(self._rate)
        return reason or "stopped with the other ranks", stopped

    def _train_epoch(self, bar: tqdm, stop: StopRequest) -> None:
        """Run the rest of the current epoch, or until a limit or a stop request."""
        p, c = self.progress, self.loop
        for batch in self.epoch_batches()[p.batch :]:
            loss = self.train_step(batch)
            p.batch += 1
            p.elapsed = time.time() - self._clock
            bar.update(1)
            if p.step % c.log_every == 0:
                self._log_progress(bar, loss)
            if c.valid_every and p.step % c.valid_every == 0:
                self.validate_and_save(self._rate)
            elif c.save_every and p.step % c.save_every == 0:
                self.save_last()
            if self.dist.any(
                stop.requested or bool(self.limits_reached()), self.device
            ):
                self._halt = True
                return
        p.epoch, p.batch = p.epoch + 1, 0
        if not c.valid_every:
            self.validate_and_save(self._rate)

    def limits_reached(self) -> str | None:
        return limit_reached(self.loop, self.progress, self.metric)

    def save_last(self) -> None:
        """last.pt (rank 0 writes; every rank's RNG state goes in)."""
        self._rng_ranks = self.dist.gather(rng_state()) if self.dist.enabled else None
        if self.dist.is_main:
            save_checkpoint(self.ckpt_dir / "last.pt", self.payload())

    def validate_and_save(self, rate: float) -> None:
        """Validate, append to metrics.jsonl, write last.pt (and best.pt if best).

        Under torchrun rank 0 validates and writes; the others take its progress
        (learning rate, best score, patience) so every rank decides alike.
        """
        self._rng_ranks = self.dist.gather(rng_state()) if self.dist.enabled else None
        if self.dist.is_main:
            self._validate_and_write(rate)
        if self.dist.enabled:
            self.progress = Progress(
                **self.dist.from_main(dataclasses.asdict(self.progress))
            )

    def _validate_and_write(self, rate: float) -> None:
        metrics = self.validate()
        best = self.is_best(metrics)
        after_validation(self.loop, self.progress, best, self.metric)
        p = self.progress
        record = {
            "step": p.step,
            "epoch": p.epoch,
            **{k: round(v, 4) for k, v in metrics.items()},
            "tokens_per_s": round(rate, 1),
            "lr": p.lr,
            "elapsed_s": round(p.elapsed, 1),
        }
        append_metrics(self.run_dir, record)
        log.info(
            "step %d epoch %d | %s | %.0f tok/s%s",
            p.step,
            p.epoch,
            self.describe(metrics),
            rate,
            " | best" if best else "",
        )
        payload = self.payload()
        save_checkpoint(self.ckpt_dir / "last.pt", payload)
        if best:
            save_checkpoint(self.ckpt_dir / "best.pt", payload)

    def _log_progress(self, bar: tqdm, loss: float) -> None:
        p = self.progress
        now = time.time()
        mark_time, mark_tokens = getattr(self, "_mark", (self._clock, 0))
        self._rate = (p.tokens - mark_tokens) / max(1e-9, now - mark_time)
        self._mark = (now, p.tokens)
        bar.set_postfix(loss=f"{loss:.3f}", lr=f"{p.lr:.1e}", tok_s=f"{self._rate:.0f}")
        if bar.disable:
            log.info(
                "step %d loss %.3f lr %.2e %.0f tok/s", p.step, loss, p.lr, self._rate
            )

    def best_val_loss(self) -> float | None:
        records = read_metrics(self.run_dir)
        return min(r["val_loss"] for r in records) if records else None

    def just_validated(self) -> bool:
        records = read_metrics(self.run_dir)
        return bool(records) and records[-1]["step"] == self.progress.step

    def base_summary(self, reason: str, stopped: bool) -> dict[str, Any]:
        p = self.progress
        return {
            "status": "stopped" if stopped else "ok",
            "stop_reason": reason,
            "steps": p.step,
            "epochs": p.epoch,
            "best_val_loss": self.best_val_loss(),
            "parameters": self.model.num_parameters(),
            "tokens_per_s": round(p.tokens / max(1e-9, p.train_seconds), 1),
            "wall_time_s": round(p.elapsed, 1),
        }
