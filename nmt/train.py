"""`python -m nmt.train experiment=... data.root=DIR train.max_minutes=M` (Hydra)."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from nmt.config import TrainConfig, config_path, register_configs
from nmt.errors import user_errors
from nmt.trainer import Trainer

log = logging.getLogger("nmt.train")


def run_train(cfg: TrainConfig, run_dir: Path) -> dict:
    """Train and write `<run_dir>/result.json`; returns the summary."""
    summary = Trainer(cfg, run_dir).run()
    (Path(run_dir) / "result.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


register_configs()


@hydra.main(version_base="1.3", config_path=config_path(), config_name="config")
def main(dcfg: DictConfig) -> float:
    cfg: TrainConfig = OmegaConf.to_object(dcfg)
    with user_errors():
        summary = run_train(cfg, Path(HydraConfig.get().runtime.output_dir))
    print(json.dumps(summary), file=sys.stdout)
    return summary["best_val_bleu"]


if __name__ == "__main__":
    main()
