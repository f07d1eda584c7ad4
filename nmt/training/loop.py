"""The training loop shared by translation and the char LM: the optimizer step,
limits, signals, periodic validation and checkpoints (exact resume).

Task-specific work (data, model, the loss of a batch, validation) lives in the
subclasses in `seq2seq.py` and `lm.py`. Knows nothing of Hydra. About 400
lines: the step, the loop and the checkpoints together fix the order in which
random numbers are drawn (exact resume), so they are read in one file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import torch
from torch import Tensor
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from nmt.training.checkpoint import (
    check_resumable,
    load_checkpoint,
    resume_errors,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from nmt.training.distributed import Distributed
from nmt.training.ema import WeightAverage
from nmt.training.progress import (
    Progress,
    after_validation,
    forget_metrics_after,
    limit_reached,
    schedule_lr,
)
from nmt.training.release import inference_payload, kept_checkpoints
from nmt.training.report import RunReport
from nmt.training.stop import Interrupted, StopRequest
from nmt.utils.progress import terminal_bar
from nmt.utils.runtime import (
    autocast,
    pick_device,
    resolve_precision,
    set_seed,
    set_threads,
)
from nmt.utils.text import first_line

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

    def setup_runtime(
        self, cfg: TrainConfig, run_dir: Path, stop: StopRequest | None
    ) -> None:
        """Directories, threads, device, precision, the seed and signal handling
        (`stop`: the caller's, installed for the whole run; None: the loop's own)."""
        self.cfg, self.loop = cfg, cfg.train
        self.stop = stop or StopRequest()
        self.run_dir = Path(run_dir)
        self.report = RunReport(self.run_dir)  # its clock starts with the set-up
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.threads = set_threads(self.loop.threads)
        self.dist = Distributed.from_env()
        self.device = self.dist.init(pick_device(self.loop.device))
        if not self.dist.is_main:  # rank 0 alone logs and writes files
            logging.getLogger("nmt").setLevel(logging.WARNING)
        self.precision = resolve_precision(self.loop.precision, self.device)
        set_seed(self.loop.seed)

    def build_model(self, make: Callable[[], Any]) -> Any:
        """`make()` on the run's device; a model too large to allocate is a
        one-line ValueError naming the cause, not an allocator traceback."""
        try:
            return make().to(self.device)
        except (RuntimeError, MemoryError, OverflowError) as error:
            raise ValueError(
                f"cannot build the model from the model.* sizes: {first_line(error)}"
            ) from None

    def setup_optimizer(self, resume: dict[str, Any] | None) -> None:
        """Adam over `model`, progress from zero, then the states of `resume`."""
        self.optimizer = torch.optim.Adam(
            self.model.parameters(),
            lr=self.loop.lr,
            weight_decay=self.loop.weight_decay,
        )
        self.progress = Progress(lr=self.loop.lr)
        self.ema = WeightAverage(self.model, self.loop.ema) if self.loop.ema else None
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

    def validation_loss(self) -> float:
        """The val loss alone (what `validate` reports as "val_loss")."""
        return self.validate()["val_loss"]

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
            **({"ema": self.ema.state_dict()} if self.ema else {}),
        }

    def published(self, payload: dict[str, Any]) -> dict[str, Any]:
        """`payload` as best.pt and step_N.pt hold it: with train.ema, the
        averaged weights (those validated) and no average state."""
        if self.ema is None:
            return payload
        rest = {k: v for k, v in payload.items() if k != "ema"}
        return {**rest, "model": self.ema.weights(self.model)}

    def averaged(self) -> contextlib.AbstractContextManager[None]:
        """Context: the model holds the weights that validation scores."""
        if self.ema is None:
            return contextlib.nullcontext()
        return self.ema.swapped_in(self.model)

    tokenizer_keys: tuple[str, ...] = ()  # the payload's "tokenizers" entries

    def load_resume(self) -> dict[str, Any] | None:
        """last.pt of the run dir (None if absent), checked to hold a resumable
        state of this kind and model config (CheckpointError naming what is wrong)."""
        path = self.ckpt_dir / "last.pt"
        if not path.exists():
            log.warning("train.resume=true but %s does not exist: starting fresh", path)
            if self.dist.is_main:  # validations of a run killed before its last.pt
                forget_metrics_after(self.run_dir, 0)
            return None
        payload = load_checkpoint(path)
        check_resumable(
            payload,
            path,
            self.kind,
            dataclasses.asdict(self.cfg.model),
            progress=[f.name for f in dataclasses.fields(Progress)],
            tokenizers=self.tokenizer_keys,
        )
        return payload

    def resume_errors(self) -> contextlib.AbstractContextManager[None]:
        """Context: errors restoring last.pt's states are one-line CheckpointErrors."""
        return resume_errors(self.ckpt_dir / "last.pt")

    def restore(self, payload: dict[str, Any]) -> None:
        """Model, optimizer, progress and RNG states from a `payload()`; states
        that do not fit this model are a CheckpointError."""
        with self.resume_errors():
            self.model.load_state_dict(payload["model"])
            self.optimizer.load_state_dict(payload["optimizer"])
            ranks = payload.get("rng_ranks")
            if self.dist.enabled and ranks and len(ranks) == self.dist.world:
                set_rng_state(ranks[self.dist.rank])
            else:
                set_rng_state(payload["rng"])
            if self.ema is not None and "ema" in payload:
                self.ema.load_state_dict(payload["ema"])
            elif self.ema is not None:  # from the restored weights, not the initial
                log.warning("last.pt has no weight average: train.ema starts it now")
                self.ema = WeightAverage(self.model, self.loop.ema)
        self.progress = Progress(**payload["progress"])
        p = self.progress
        log.info("resumed at step %d (epoch %d, batch %d)", p.step, p.epoch, p.batch)
        if self.dist.is_main and self.report.records() and not self.has_best():
            log.warning(
                "%s has no best.pt: the next validation that beats the best %s "
                "so far writes one",
                self.ckpt_dir,
                self.metric,
            )
        # validations logged after last.pt (and the one of its step, if still due)
        done = p.step - 1 if p.validation_due else p.step
        if self.dist.is_main and (dropped := forget_metrics_after(self.run_dir, done)):
            log.info(
                "metrics.jsonl: %d validation(s) after step %d to redo", dropped, done
            )

    def has_best(self) -> bool:
        return (self.ckpt_dir / "best.pt").exists()

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
        if self.ema is not None:
            self.ema.update(self.model)
        self.progress.step += 1
        self.progress.tokens += step.total
        loss = float(step.loss.detach()) / step.tokens  # syncs: the timing is true
        self.progress.train_seconds += time.perf_counter() - began
        return loss

    # -- the loop -------------------------------------------------------------------
    def train_until_limit(self) -> tuple[str, bool]:
        """Train until a limit or a stop signal; returns (reason, stopped by signal).

        Ends with last.pt (and metrics/best.pt when a validation is due) written.
        Steps and checkpoint writes finish before a signal is obeyed; validations
        are cut short by one (see `nmt.training.stop`).
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
        self.report.start(p, tensorboard=self.loop.tensorboard and self.dist.is_main)
        self._halt = False
        bar = terminal_bar(
            total=self.loop.max_steps or None, initial=p.step, unit="step"
        )
        reason = None
        with self.stop, self.stop.deferred(), logging_redirect_tqdm():
            try:
                if p.validation_due:  # cut short by a signal before the resume
                    self.validate_and_save()
                reason = self.limits_reached()
                while reason is None and not self.stop.requested and not self._halt:
                    self._train_epoch(bar)
                    reason = self.limits_reached()
                stopped = self.dist.any(self.stop.requested, self.device)
                if stopped:
                    self.save_last()
                elif not self.dist.from_main(self.just_validated()):
                    self.validate_and_save()
            except Interrupted:  # in a validation: last.pt is saved, it is still due
                stopped = True
        bar.close()
        self.report.close()
        if stopped:
            reason = f"stopped by {self.stop.name or 'signal'}"
            log.warning(
                "%s at step %d: last.pt saved; to continue, run the same command "
                "with train.resume=true (run dir %s)",
                reason,
                p.step,
                self.run_dir,
            )
        return reason or "stopped with the other ranks", stopped

    def _train_epoch(self, bar: tqdm) -> None:
        """Run the rest of the current epoch, or until a limit or a stop request."""
        p, c = self.progress, self.loop
        for batch in self.epoch_batches()[p.batch :]:
            loss = self.train_step(batch)
            p.batch += 1
            p.elapsed = self.report.wall_time()
            bar.update(1)
            if p.step % c.log_every == 0 and self.dist.is_main:
                self.report.step(bar, p, loss)
            if c.valid_every and p.step % c.valid_every == 0:
                self.validate_and_save()
            elif c.save_every and p.step % c.save_every == 0:
                self.save_last()
            if self.dist.any(
                self.stop.requested or bool(self.limits_reached()), self.device
            ):
                self._halt = True
                return
        p.epoch, p.batch = p.epoch + 1, 0
        if not c.valid_every:
            self.validate_and_save()

    def limits_reached(self) -> str | None:
        reserve = self.progress.validation_seconds * self.final_work()
        return limit_reached(self.loop, self.progress, self.metric, reserve=reserve)

    def final_work(self) -> float:
        """The work after the last step (final validation, a test) in units of one
        validation: train.max_minutes stops training early enough for it."""
        return 1.0

    def save_last(self) -> None:
        """last.pt (rank 0 writes; every rank's RNG state goes in)."""
        self._rng_ranks = self.dist.gather(rng_state()) if self.dist.enabled else None
        if self.dist.is_main:
            save_checkpoint(self.ckpt_dir / "last.pt", self.payload())

    def validate_and_save(self) -> None:
        """Validate, append to metrics.jsonl, write best.pt (if best) and last.pt.

        best.pt is written first: a kill before last.pt is rewritten resumes
        before this validation and redoes it, so best.pt is never left behind.
        A stop signal during the validation (single process) saves last.pt with
        the validation still due and raises `Interrupted`. Under torchrun rank 0
        validates and writes; the others take its progress (learning rate, best
        score, patience) so every rank decides alike.
        """
        self._rng_ranks = self.dist.gather(rng_state()) if self.dist.enabled else None
        if self.dist.is_main:
            self._validate_and_write()
        if self.dist.enabled:
            self.progress = Progress(
                **self.dist.from_main(dataclasses.asdict(self.progress))
            )

    def _validate_and_write(self) -> None:
        # other ranks wait in a collective: only a single process stops mid-way
        cut_short = (
            contextlib.nullcontext if self.dist.enabled else self.stop.interruptible
        )
        began = time.time()
        try:
            # the weights are swapped outside cut_short: a signal waits for the
            # trained weights to be back whole before last.pt is written
            with self.averaged(), cut_short():
                metrics = self.validate()
            if self.ema is not None:  # what the average gains, in the log
                with cut_short():
                    metrics["val_loss_trained"] = self.validation_loss()
        except Interrupted:
            self.model.train()
            self.progress.validation_due = True
            self.save_last()
            raise
        p = self.progress
        p.validation_due = False
        p.validation_seconds = time.time() - began
        p.elapsed = self.report.wall_time()
        best = self.is_best(metrics)
        after_validation(self.loop, p, best, self.metric)
        line = self.describe(metrics)
        if self.ema is not None:
            line += f"; trained weights val loss {metrics['val_loss_trained']:.4f}"
        self.report.validation(p, metrics, line, best)
        payload = self.payload()
        published = self.published(payload)
        if best:
            save_checkpoint(self.ckpt_dir / "best.pt", published)
        if self.loop.keep_last:
            self._keep(published)
        save_checkpoint(self.ckpt_dir / "last.pt", payload)

    def _keep(self, payload: dict[str, Any]) -> None:
        """step_N.pt (weights only) of this validation; the oldest beyond
        train.keep_last are removed."""
        path = self.ckpt_dir / f"step_{self.progress.step}.pt"
        save_checkpoint(path, inference_payload(payload))
        steps = kept_checkpoints(self.run_dir)
        for step in list(steps)[: -self.loop.keep_last]:
            steps[step].unlink(missing_ok=True)

    def just_validated(self) -> bool:
        return self.report.validated_at(self.progress.step)

    def test_at_end(self, summary: dict[str, Any], score: Callable[[], dict]) -> None:
        """Add `score()` (the test of best.pt) to `summary`; a stop signal during it
        marks the summary stopped (the checkpoints are complete: a resumed run
        goes straight to the test)."""
        try:
            with self.stop, self.stop.interruptible():
                summary.update(score())
        except Interrupted:
            reason = f"stopped by {self.stop.name} during the test"
            log.warning("%s: to test, resume with train.resume=true", reason)
            summary.update(status="stopped", stop_reason=reason)
        summary["wall_time_s"] = round(self.report.wall_time(), 1)

    def base_summary(self, reason: str, stopped: bool) -> dict[str, Any]:
        if self.dist.is_main and self.report.records() and not self.has_best():
            log.warning(
                "the run ends without best.pt in %s: a test scores the final weights",
                self.ckpt_dir,
            )
        parameters = self.model.num_parameters()
        return self.report.summary(self.progress, reason, stopped, parameters)
