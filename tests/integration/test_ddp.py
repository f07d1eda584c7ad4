"""torchrun with 2 gloo processes on CPU: parameters stay in sync and match one process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nmt.training.checkpoint import load_checkpoint
from tests.conftest import REPO


def train_args(corpus: Path, run: Path, cache: Path) -> list[str]:
    return [
        "-m",
        "nmt.train",
        f"data.root={corpus}",
        "data.test_split=test",
        "data.batch_tokens=60",
        "data.max_sentences=8",
        "tokenizer.vocab_size=60",
        "tokenizer.hard_vocab_limit=false",
        "model.hidden_size=16",
        "model.embed_size=8",
        "model.dropout=0.0",
        "model.label_smoothing=0.0",
        "train.max_steps=8",
        "train.valid_every=1000",
        "train.threads=1",
        "train.precision=fp32",
        "train.lr=0.01",
        "train.test_at_end=false",
        f"train.cache_dir={cache}",
        f"hydra.run.dir={run}",
    ]


@pytest.mark.skipif(
    shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None
    and shutil.which("torchrun") is None,
    reason="torchrun not installed",
)
def test_two_gloo_ranks_stay_in_sync_and_match_single_process(tiny_corpus, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    single = subprocess.run(
        [sys.executable, *train_args(tiny_corpus, tmp_path / "one", tmp_path / "c")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env=env,
    )
    assert single.returncode == 0, single.stderr
    ddp = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            *train_args(tiny_corpus, tmp_path / "two", tmp_path / "c"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env=env,
    )
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    result = json.loads((tmp_path / "two" / "result.json").read_text())
    assert result["world_size"] == 2 and result["ddp_params_in_sync"] is True
    one = load_checkpoint(tmp_path / "one" / "checkpoints" / "last.pt")
    two = load_checkpoint(tmp_path / "two" / "checkpoints" / "last.pt")
    assert one["progress"]["step"] == two["progress"]["step"] == 8
    assert one["progress"]["tokens"] == two["progress"]["tokens"]
    for name, tensor in one["model"].items():  # same global batches, same gradients
        torch.testing.assert_close(two["model"][name], tensor, atol=1e-4, rtol=1e-3)
    a = json.loads((tmp_path / "one" / "metrics.jsonl").read_text().splitlines()[-1])
    b = json.loads((tmp_path / "two" / "metrics.jsonl").read_text().splitlines()[-1])
    assert abs(a["val_loss"] - b["val_loss"]) < 1e-3
