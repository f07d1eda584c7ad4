"""Settings and bookkeeping of a training loop: LoopConfig (Hydra group `train`),
Progress (saved in checkpoints), the lr schedule, patience counters and limits,
and the log of validations (metrics.jsonl).

Shared by translation and the char LM; the loop itself is `loop.py`.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nmt.utils.io import atomic_write, naming, read_lines

log = logging.getLogger("nmt.training.loop")


@dataclass
class LoopConfig:
    """Optimisation, limits, validation and run-time settings (Hydra group `train`)."""

    seed: int = 1
    lr: float = 1e-3  # Adam learning rate (peak for warmup_decay)
    weight_decay: float = 0.0
    clip_norm: float = 1.0  # gradient-norm clipping; 0 = off
    # plateau | warmup_decay (inverse sqrt) | cosine (to min_lr at max_steps) | constant
    schedule: str = "plateau"
    warmup_steps: int = 1000  # warmup_decay and cosine (linear warm-up; 0 = none)
    decay_factor: float = 0.5  # plateau: lr *= factor ...
    decay_patience: int = 2  # ... after this many validations without a gain
    min_lr: float = 1e-5
    max_epochs: int = 0  # 0 = no limit
    max_steps: int = 0  # 0 = no limit
    # wall-clock budget of the whole run (set-up, validations, the test at the end;
    # summed over resumed sessions); 0 = no limit
    max_minutes: float = 0.0
    valid_every: int = 1000  # steps between validations; 0 = once per epoch
    valid_beam: int = 1  # translation: beam width for validation BLEU (1 = greedy)
    # early stopping after this many validations without a gain (val BLEU for
    # translation, val loss for the LM); 0 = off
    patience: int = 0
    resume: bool = False  # continue exactly from <run dir>/checkpoints/last.pt
    threads: int = 0  # torch threads; 0 = all cores available to the process
    device: str = "auto"  # auto | cpu | cuda
    precision: str = "auto"  # auto (bf16 where native) | fp32 | bf16
    save_every: int = 0  # also write last.pt every N steps; 0 = at validations only
    log_every: int = 100  # steps between progress log lines (stderr)
    cache_dir: str = "data/cache"  # translation: trained SentencePiece models
    # translation: translate the test split with best.pt and `search` at the end
    test_at_end: bool = True
    # a fresh run (resume=false) into a run dir that holds a run deletes that run
    # (checkpoints, metrics.jsonl, result.json) instead of refusing to start
    overwrite: bool = False
    tensorboard: bool = True  # curves in <run dir>/tensorboard (needs the extra)
    # also keep the weights of the last K validations as checkpoints/step_N.pt
    # (inference checkpoints, for `nmt.average`); 0 = none
    keep_last: int = 0
    # decay of an exponential moving average of the weights (e.g. 0.999) that
    # validation, best.pt, step_N.pt and the test use (nmt.training.ema); 0 = off
    ema: float = 0.0

    def __post_init__(self) -> None:
        """Refuse negative limits and sizes before any work starts (0 = off/auto)."""
        for name in (
            "max_epochs",
            "max_steps",
            "max_minutes",
            "valid_every",
            "patience",
            "save_every",
            "keep_last",
            "warmup_steps",
            "decay_patience",
            "threads",
            "weight_decay",
            "clip_norm",
            "min_lr",
        ):
            if getattr(self, name) < 0:
                raise ValueError(
                    f"train.{name} must be >= 0, got {getattr(self, name)}"
                )
        if self.schedule == "cosine" and self.max_steps <= self.warmup_steps:
            raise ValueError(
                "train.schedule=cosine decays until train.max_steps: set it above "
                f"train.warmup_steps ({self.warmup_steps})"
            )
        if not (self.ema == 0 or 0 < self.ema < 1):
            raise ValueError(f"train.ema must be in (0, 1) or 0 (off), got {self.ema}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"train.lr must be a positive number, got {self.lr}")
        for name in ("valid_beam", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(
                    f"train.{name} must be >= 1, got {getattr(self, name)}"
                )


@dataclass
class Progress:
    """Where training stands; saved in checkpoints so resume is exact."""

    step: int = 0
    epoch: int = 0
    batch: int = 0  # batches of `epoch` already consumed
    elapsed: float = 0.0  # seconds of training so far (all sessions)
    lr: float = 0.0
    best_bleu: float = -1.0  # translation: best val BLEU so far
    best_loss: float = math.inf  # LM: best val loss (nats/char) so far
    bad_validations: int = 0  # since the last gain (early stopping)
    bad_lr: int = 0  # since the last gain or lr decay (plateau schedule)
    tokens: int = 0  # target tokens (LM: characters) trained on
    train_seconds: float = 0.0  # time inside optimizer steps (excludes validation)
    # a stop signal cut the validation of `step` short: the resumed run does it first
    validation_due: bool = False
    validation_seconds: float = 0.0  # how long the last validation took


def schedule_lr(cfg: LoopConfig, progress: Progress) -> float:
    """Learning rate for the next step (warmup_decay, cosine), or the current one.

    cosine: linear warm-up over warmup_steps, then half a cosine from lr down to
    min_lr at max_steps (a known step budget ends at a small lr).
    """
    step = max(1, progress.step + 1)
    if cfg.schedule == "warmup_decay":
        return cfg.lr * min(step / cfg.warmup_steps, math.sqrt(cfg.warmup_steps / step))
    if cfg.schedule == "cosine":
        if step <= cfg.warmup_steps:
            return cfg.lr * step / cfg.warmup_steps
        done = min(1.0, (step - cfg.warmup_steps) / (cfg.max_steps - cfg.warmup_steps))
        return cfg.min_lr + (cfg.lr - cfg.min_lr) * 0.5 * (1 + math.cos(math.pi * done))
    if cfg.schedule in ("plateau", "constant"):
        return progress.lr or cfg.lr
    raise ValueError(
        f"unknown schedule '{cfg.schedule}'; use plateau|warmup_decay|cosine|constant"
    )


def after_validation(
    cfg: LoopConfig, progress: Progress, improved: bool, metric: str
) -> None:
    """Update the patience and plateau counters after a validation."""
    if improved:
        progress.bad_validations, progress.bad_lr = 0, 0
        return
    progress.bad_validations += 1
    progress.bad_lr += 1
    if cfg.schedule == "plateau" and progress.bad_lr >= cfg.decay_patience:
        progress.lr = max(cfg.min_lr, progress.lr * cfg.decay_factor)
        progress.bad_lr = 0
        log.info("%s plateau: lr -> %.2e", metric, progress.lr)


def limit_reached(
    cfg: LoopConfig, progress: Progress, metric: str, *, reserve: float = 0.0
) -> str | None:
    """Why training must stop now ("max_steps=100", ...), or None to go on.

    `reserve`: seconds the work after the last step will take (the final
    validation and test); max_minutes stops training that much earlier.
    """
    p, c = progress, cfg
    if c.max_steps and p.step >= c.max_steps:
        return f"max_steps={c.max_steps}"
    if c.max_epochs and p.epoch >= c.max_epochs:
        return f"max_epochs={c.max_epochs}"
    if c.max_minutes and p.elapsed + reserve >= 60 * c.max_minutes:
        return f"max_minutes={c.max_minutes:g}"
    if c.patience and p.bad_validations >= c.patience:
        return f"no {metric} gain in {c.patience} validations"
    return None


def append_metrics(run_dir: Path, record: dict[str, Any]) -> None:
    """Add one validation's record to `<run_dir>/metrics.jsonl`."""
    path = run_dir / "metrics.jsonl"
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
    except OSError as error:
        raise naming(error, path) from None


def forget_metrics_after(run_dir: Path, step: int) -> int:
    """Drop the records of validations after `step` from metrics.jsonl: a run killed
    between logging a validation and writing last.pt resumes before it and logs
    it again. Returns how many were dropped."""
    records = read_metrics(run_dir)
    kept = [r for r in records if r["step"] <= step]
    path = run_dir / "metrics.jsonl"
    lines = [line for line in read_lines(path) if line.strip()] if path.exists() else []
    if len(kept) < len(lines):  # records after `step`, or lines cut short
        text = "".join(json.dumps(r) + "\n" for r in kept)
        atomic_write(run_dir / "metrics.jsonl", text.encode("utf-8"))
    return len(records) - len(kept)


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The records of `<run_dir>/metrics.jsonl`, oldest first ([] if none yet)."""
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    records = []
    for number, line in enumerate(read_lines(path), 1):
        try:
            record = json.loads(line) if line.strip() else None
        except ValueError:  # a line cut short by a kill or a full disk
            record = None
        if isinstance(record, dict) and isinstance(record.get("step"), int):
            records.append(record)
        elif line.strip():
            log.warning("%s: line %d is not a validation record: skipped", path, number)
    return records
