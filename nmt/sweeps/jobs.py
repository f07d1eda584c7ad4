"""One Hydra job (`nmt.train`, `nmt.evaluate`): run it and record it in result.json.

Adds the job number and its overrides to the result, and in a multirun turns an
exception into a `status: failed` row instead of stopping the sweep. Not a library
module: it reads HydraConfig, so only entry points call it.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from nmt.utils.errors import USER_ERRORS, user_errors
from nmt.utils.io import atomic_write
from nmt.utils.text import one_line

log = logging.getLogger("nmt.sweeps.jobs")

Run = Callable[[Any, Path], dict[str, Any]]


def run_job(run: Run, dcfg: DictConfig, *, prog: str) -> dict[str, Any]:
    """Convert `dcfg`, call `run(cfg, run_dir)` and write `<run_dir>/result.json`.

    In a multirun, an exception in the job is logged and recorded as
    `{"status": "failed", "error": "<Type>: <first line>"}`, and not re-raised, so
    the remaining jobs and the end-of-sweep summary still run. In a single run,
    user errors exit with one line (`nmt.utils.errors.user_errors`); others propagate.

    Args:
        run: `run_train`/`run_evaluate`-like function taking the typed config
            and the job's output dir and returning its metrics.
        dcfg: the job's composed config.
        prog: program name for messages and the result's `task` field.

    Returns:
        The dict written to result.json: task, job, overrides, status, metrics.
    """
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    job = {
        "task": prog,
        "job": OmegaConf.select(hydra_cfg, "job.num", default=0),
        "overrides": list(hydra_cfg.overrides.task),
    }
    if hydra_cfg.mode != RunMode.MULTIRUN:
        with user_errors(prog):
            result = run(OmegaConf.to_object(dcfg), run_dir)
        return write_result(run_dir, {**job, "status": "ok", **result})
    try:
        result = run(OmegaConf.to_object(dcfg), run_dir)
    except Exception as error:  # a sweep must survive any one job
        message = one_line(error)
        expected = isinstance(error, USER_ERRORS)
        log.error("job %s failed: %s", job["job"], message, exc_info=not expected)
        result = {"status": "failed", "error": message}
    return write_result(run_dir, {**job, "status": "ok", **result})


def write_result(run_dir: Path, result: dict[str, Any]) -> dict[str, Any]:
    """Write `result` as `<run_dir>/result.json` atomically (readers never see half)."""
    text = json.dumps(result, indent=2, default=str) + "\n"
    atomic_write(Path(run_dir) / "result.json", text.encode("utf-8"))
    return result


def objective(result: dict[str, Any], key: str, *, failed: float = -1.0) -> float:
    """The value a sweeper optimises: `result[key]`, or `failed` when it is absent.

    The default -1.0 is below any BLEU, so a maximising Optuna study records a
    failed job as a bad trial and goes on (optuna 2.x rejects NaN and a raised
    error ends the whole study).
    """
    value = result.get(key)
    if isinstance(value, int | float) and not math.isnan(value):
        return float(value)
    return failed
