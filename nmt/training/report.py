"""What a training run reports: progress lines, validation records in metrics.jsonl,
TensorBoard event files (with the `tensorboard` extra), tokens/s, wall time and the
summary behind result.json.

Only rank 0 of a multi-process run reports. The loop (`loop.py`) decides when;
this module decides what is written and how it is measured.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from nmt.training.progress import Progress, append_metrics, read_metrics

log = logging.getLogger("nmt.training.loop")


def open_board(log_dir: Path, step: int) -> Any:
    """A TensorBoard SummaryWriter for `log_dir`, or None (said once in the log)
    without the `tensorboard` package. Events after `step` (of a run resumed from
    it) are purged, so the curves hold each step once."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        log.info("no TensorBoard curves: pip install 'nmt[tensorboard]' for them")
        return None
    return SummaryWriter(str(log_dir), purge_step=step + 1 if step else None)


class RunReport:
    """Log lines and metrics.jsonl of one run dir, with tokens/s and wall time.

    tokens/s counts only the time inside optimizer steps (`Progress.train_seconds`),
    so validations do not dilute it; wall time counts everything since the
    trainer was built, plus earlier sessions of a resumed run.
    """

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.started = time.time()  # set-up counts towards the wall time
        self.clock = self.started
        self._marks: dict[str, tuple[float, int]] = {}
        self._board: Any = None

    def start(self, progress: Progress, *, tensorboard: bool = True) -> None:
        """Begin this session's clocks at `progress` (restored on resume) and,
        with `tensorboard`, the event files in `<run dir>/tensorboard`."""
        self.clock = self.started - progress.elapsed
        mark = (progress.train_seconds, progress.tokens)
        self._marks = {"log": mark, "valid": mark}
        if tensorboard and self._board is None:
            self._board = open_board(self.run_dir / "tensorboard", progress.step)

    def close(self) -> None:
        if self._board is not None:
            self._board.close()
            self._board = None

    def _scalars(self, step: int, values: dict[str, float]) -> None:
        if self._board is not None:
            for name, value in values.items():
                self._board.add_scalar(name, value, step)

    def wall_time(self) -> float:
        """Seconds of the run so far, earlier sessions included."""
        return time.time() - self.clock

    def rate(self, progress: Progress, since: str) -> float:
        """Tokens (LM: characters) per second of optimizer steps since the mark
        `since` ("log" or "valid"), which moves to now."""
        seconds, tokens = self._marks.get(since, (0.0, 0))
        self._marks[since] = (progress.train_seconds, progress.tokens)
        elapsed = progress.train_seconds - seconds
        return (progress.tokens - tokens) / elapsed if elapsed > 0 else 0.0

    def step(self, bar: tqdm, progress: Progress, loss: float) -> None:
        """A progress line: in the bar's postfix and in the log (on a terminal the
        loop's `logging_redirect_tqdm` prints it above the bar)."""
        p, rate = progress, self.rate(progress, "log")
        bar.set_postfix(loss=f"{loss:.3f}", lr=f"{p.lr:.1e}", tok_s=f"{rate:.0f}")
        log.info("step %d loss %.3f lr %.2e %.0f tok/s", p.step, loss, p.lr, rate)
        self._scalars(
            p.step, {"train/loss": loss, "train/lr": p.lr, "train/tok_s": rate}
        )

    def validation(
        self, progress: Progress, metrics: dict[str, float], text: str, best: bool
    ) -> None:
        """Append a validation's record to metrics.jsonl and log `text` (its
        one-line description)."""
        p, rate = progress, self.rate(progress, "valid")
        append_metrics(
            self.run_dir,
            {
                "step": p.step,
                "epoch": p.epoch,
                **{k: round(v, 4) for k, v in metrics.items()},
                "tokens_per_s": round(rate, 1),
                "lr": p.lr,
                "elapsed_s": round(p.elapsed, 1),
            },
        )
        self._scalars(
            p.step, {f"val/{k.removeprefix('val_')}": v for k, v in metrics.items()}
        )
        if self._board is not None:
            self._board.flush()  # a validation is a moment to be seen
        best_mark = " | best" if best else ""
        log.info(
            "step %d epoch %d | %s | %.0f tok/s%s",
            p.step,
            p.epoch,
            text,
            rate,
            best_mark,
        )

    def records(self) -> list[dict[str, Any]]:
        return read_metrics(self.run_dir)

    def validated_at(self, step: int) -> bool:
        """Whether the newest validation record is of `step`."""
        records = self.records()
        return bool(records) and records[-1]["step"] == step

    def best_val_loss(self) -> float | None:
        losses = [r["val_loss"] for r in self.records() if "val_loss" in r]
        return min(losses, default=None)

    def summary(
        self, progress: Progress, reason: str, stopped: bool, parameters: int
    ) -> dict[str, Any]:
        """The fields of result.json both kinds of run share."""
        p = progress
        return {
            "status": "stopped" if stopped else "ok",
            "stop_reason": reason,
            "steps": p.step,
            "epochs": p.epoch,
            "best_val_loss": self.best_val_loss(),
            "parameters": parameters,
            "tokens_per_s": round(p.tokens / max(1e-9, p.train_seconds), 1),
            "wall_time_s": round(self.wall_time(), 1),
        }
