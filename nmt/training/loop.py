"""The training loop shared by translation and the char LM: limits, signals, periodic
validation, metrics.jsonl and checkpoints (atomic, exact resume).

Task-specific work (data, model, a step, validation) lives in the subclasses in
`trainer.py` and `lm_trainer.py`. Knows nothing of Hydra.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from tqdm import tqdm

from nmt.training.checkpoint import (
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from nmt.training.distributed import Distributed
from nmt.training.progress import Progress, after_validation, schedule_lr
from nmt.utils.runtime import pick_device, resolve_precision, set_seed, set_threads

if TYPE_CHECKING:
    from nmt.config import TrainConfig

log = logging.getLogger(__name__)


class StopRequest:
    """SIGINT/SIGTERM set a flag the loop checks between steps (a second ^C kills)."""

    def __init__(self) -> None:
        self.requested = False

    def __enter__(self) -> StopRequest:
        self._old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        for s in self._old:
            signal.signal(s, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        log.warning("stop requested: finishing the current step and saving last.pt")

    def __exit__(self, *exc: object) -> None:
        for s, handler in self._old.items():
            signal.signal(s, handler)


class TrainingLoop:
    """Epochs of batches with periodic validation, checkpoints and limits.

    Subclasses build data, `model`, `optimizer` and `progress` in `__init__` (after
    `setup_runtime`) and implement the hooks `epoch_batches`, `train_step`,
    `validate`, `is_best`, `describe` and `payload`.
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
        if payload.get("kind") != self.kind:
            raise ValueError(
                f"cannot resume {path}: it is a '{payload.get('kind')}' checkpoint "
                f"and this run trains '{self.kind}'"
            )
        saved = payload["config"]["model"]
        now = dataclasses.asdict(self.cfg.model)
        diff = [
            f"{k}={saved.get(k)!r}->{v!r}" for k, v in now.items() if saved.get(k) != v
        ]
        if diff:
            raise ValueError(
                f"cannot resume {path}: model config differs ({', '.join(diff)})"
            )
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

    def apply_lr(self) -> None:
        """Set the scheduled learning rate for the next step."""
        lr = schedule_lr(self.loop, self.progress)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.progress.lr = lr

    # -- the loop -------------------------------------------------------------------
    def train_until_limit(self) -> tuple[str, bool]:
        """Train until a limit or a signal; returns (reason, stopped by signal).

        Ends with last.pt (and metrics/best.pt when a validation is due) written.
        """
        self.run_dir.mkdir(parents=True, exist_ok=True)
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
        p, c = self.progress, self.loop
        if c.max_steps and p.step >= c.max_steps:
            return f"max_steps={c.max_steps}"
        if c.max_epochs and p.epoch >= c.max_epochs:
            return f"max_epochs={c.max_epochs}"
        if c.max_minutes and p.elapsed >= 60 * c.max_minutes:
            return f"max_minutes={c.max_minutes:g}"
        if c.patience and p.bad_validations >= c.patience:
            return f"no {self.metric} gain in {c.patience} validations"
        return None

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
        with open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
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

    def _records(self) -> list[dict[str, Any]]:
        path = self.run_dir / "metrics.jsonl"
        if not path.exists():
            return []
        lines = path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def best_val_loss(self) -> float | None:
        records = self._records()
        return min(r["val_loss"] for r in records) if records else None

    def just_validated(self) -> bool:
        records = self._records()
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
