"""Hydra callbacks, registered under `hydra.callbacks` in conf/config.yaml and
conf/evaluate.yaml. The report itself is built by the Hydra-free `nmt.sweeps.report`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from nmt.sweeps.report import KINDS, write_report

log = logging.getLogger("nmt.sweeps.callbacks")


class SweepSummary(Callback):
    """At the end of a multirun, write summary.md/.csv (and summary.png for a
    decode sweep) in `hydra.sweep.dir` and print the table to stdout.

    Runs in the launching process after all jobs, whatever the launcher. Jobs
    record failures in their result.json (`nmt.sweeps.jobs.run_job`) instead of raising,
    so this hook is reached and a failed job is a row, not a lost sweep.
    """

    def __init__(self, kind: str | None = None, plot: bool = True) -> None:
        """`kind`: train | lm | evaluate (table columns and order); None = detect."""
        if kind is not None and kind not in KINDS:
            raise ValueError(f"kind must be one of {sorted(KINDS)}, not '{kind}'")
        self.kind, self.plot = kind, plot

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            text = write_report(
                sweep_dir, kind=self.kind, plot=self.plot, finished=True
            )
        except Exception:  # the results are safe in the job dirs; say how to retry
            log.exception(
                "sweep summary failed; rebuild it with: python -m nmt.sweep_report %s",
                sweep_dir,
            )
            return
        print(text, end="", flush=True)
