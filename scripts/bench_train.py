"""Training throughput (target tokens/s) of the multi30k_de_en config on real batches.

    python scripts/bench_train.py --data ../shared/data/multi30k [--steps 60] [--threads 2]

Builds the shipped config through Hydra, runs `--steps` optimizer steps on real
Multi30k batches (after 5 warm-up steps) for each variant and prints a table.
Run it alone on the machine: another CPU-heavy process distorts it badly.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from nmt.config import register_configs
from nmt.training.seq2seq import Trainer

CONF = Path(__file__).resolve().parent.parent / "conf"
VARIANTS = {
    "bahdanau fp32": ["train.precision=fp32"],
    "bahdanau bf16": ["train.precision=bf16"],
    "luong_general, no input feeding, bf16 (fused decoder)": [
        "train.precision=bf16",
        "model.attention=luong_general",
        "model.input_feeding=false",
    ],
}


def measure(overrides: list[str], args: argparse.Namespace) -> dict:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        dcfg = compose(
            "config",
            overrides=[
                "experiment=multi30k_de_en",
                f"data.root={args.data}",
                f"train.threads={args.threads}",
                f"train.cache_dir={args.cache}",
                *overrides,
            ],
        )
    cfg = OmegaConf.to_object(dcfg)
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(cfg, Path(run_dir))
        batches = trainer.train_data.batches(cfg.data, seed=cfg.train.seed, epoch=0)
        for indices in batches[:5]:
            trainer.train_step(indices)
        tokens, began = trainer.progress.tokens, time.perf_counter()
        for indices in batches[5 : 5 + args.steps]:
            trainer.train_step(indices)
        seconds = time.perf_counter() - began
        tokens = trainer.progress.tokens - tokens
        return {
            "params": trainer.model.num_parameters(),
            "tok_s": tokens / seconds,
            "sent_batch": sum(len(b) for b in batches[5 : 5 + args.steps]) / args.steps,
        }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="Multi30k directory ({split}.{lang})")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--cache", default="data/cache", help="SentencePiece cache dir")
    p.add_argument(
        "--variants", nargs="*", default=list(VARIANTS), help="subset to run"
    )
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    register_configs()
    rows = []
    for name in args.variants:
        r = measure(VARIANTS[name], args)
        rows.append((name, r))
        print(f"{name}: {r['tok_s']:.0f} tok/s", flush=True)
    print(
        f"\n{torch.__version__}, {args.threads} threads, {args.steps} steps of real "
        "Multi30k batches (batch_tokens 2000)\n"
    )
    print(
        "| variant | parameters | sentences/batch | target tokens/s | vs JoeyNMT 479 (1 thread) |"
    )
    print("| --- | --- | --- | --- | --- |")
    for name, r in rows:
        print(
            f"| {name} | {r['params'] / 1e6:.2f} M | {r['sent_batch']:.0f} | "
            f"{r['tok_s']:.0f} | {r['tok_s'] / 479:.1f}x |"
        )


if __name__ == "__main__":
    main()
