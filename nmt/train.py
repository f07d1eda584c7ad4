"""`python -m nmt.train experiment=... data.root=DIR train.max_minutes=M` (Hydra)."""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from nmt.config import TrainConfig, config_path, register_configs
from nmt.sweeps.jobs import objective, run_job, write_result
from nmt.training.distributed import Distributed
from nmt.training.lm import LMTrainer
from nmt.training.rundir import claim_run_dir
from nmt.training.seq2seq import Trainer
from nmt.training.stop import Interrupted, StopRequest

log = logging.getLogger("nmt.train")


def run_train(cfg: TrainConfig, run_dir: Path) -> dict:
    """Train (cfg.task: translation | lm) and write `<run_dir>/result.json`.

    The run dir is locked for the run (rank 0 under torchrun), and a stop signal
    at any moment ends the run with a summary of status "stopped" (see
    `nmt.training.stop`).
    """
    trainers = {"translation": Trainer, "lm": LMTrainer}
    if cfg.task not in trainers:
        raise ValueError(f"unknown task '{cfg.task}'; use translation or lm")
    dist = Distributed.from_env()
    if cfg.task == "lm" and dist.enabled:
        raise ValueError("multi-process (torchrun) training supports task=translation")
    claim = (
        claim_run_dir(run_dir, resume=cfg.train.resume, overwrite=cfg.train.overwrite)
        if dist.is_main
        else contextlib.nullcontext()
    )
    with StopRequest() as stop, claim:
        try:
            trainer = trainers[cfg.task](cfg, run_dir, stop=stop)
        except Interrupted:
            log.warning("%s before the first step: nothing to save", stop.name)
            summary = {"status": "stopped", "stop_reason": f"{stop.name} at set-up"}
        else:
            summary = trainer.run()
        if stop.requested:
            summary["exit_status"] = stop.exit_status
        return write_result(Path(run_dir), summary)


register_configs()


@hydra.main(version_base="1.3", config_path=config_path(), config_name="config")
def main(dcfg: DictConfig) -> float:
    # result.json gets the overrides; a failing multirun job becomes a "failed" row
    summary = run_job(run_train, dcfg, prog="nmt.train")
    print(json.dumps(summary), file=sys.stdout)
    if summary.get("exit_status"):  # stopped by a signal: say so to the shell
        sys.stdout.flush()
        sys.exit(summary["exit_status"])
    return objective(summary, "best_val_bleu")  # what the optuna sweeper maximises


if __name__ == "__main__":
    main()
