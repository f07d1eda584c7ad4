"""`python -m nmt.train experiment=... data.root=DIR train.max_minutes=M` (Hydra)."""

from __future__ import annotations

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
from nmt.training.seq2seq import Trainer

log = logging.getLogger("nmt.train")


def run_train(cfg: TrainConfig, run_dir: Path) -> dict:
    """Train (cfg.task: translation | lm) and write `<run_dir>/result.json`."""
    if cfg.task == "translation":
        summary = Trainer(cfg, run_dir).run()
    elif cfg.task == "lm":
        if Distributed.from_env().enabled:
            raise ValueError(
                "multi-process (torchrun) training supports task=translation"
            )
        summary = LMTrainer(cfg, run_dir).run()
    else:
        raise ValueError(f"unknown task '{cfg.task}'; use translation or lm")
    return write_result(Path(run_dir), summary)


register_configs()


@hydra.main(version_base="1.3", config_path=config_path(), config_name="config")
def main(dcfg: DictConfig) -> float:
    # result.json gets the overrides; a failing multirun job becomes a "failed" row
    summary = run_job(run_train, dcfg, prog="nmt.train")
    print(json.dumps(summary), file=sys.stdout)
    return objective(summary, "best_val_bleu")  # what the optuna sweeper maximises


if __name__ == "__main__":
    main()
