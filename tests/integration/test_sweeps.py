"""Sweeps: shipped sweep/launcher configs compose, multiruns write result.json per job
and a summary at the end, a failed job is a row (not a lost sweep), jobs pickle."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf, open_dict

from nmt.config import EvaluateConfig, TrainConfig, register_configs
from tests.conftest import REPO, TINY_TRAIN

CONF = REPO / "conf"
register_configs()

# sweep config -> (primary config, plugin it needs or None)
SWEEPS = {
    "cell_attention": ("config", None),
    "merge_mode": ("config", None),
    "optuna_tpe": ("config", "hydra_plugins.hydra_optuna_sweeper"),
    "beam": ("evaluate", None),
}
LAUNCHERS = {
    "local_joblib": "hydra_plugins.hydra_joblib_launcher",
    "slurm": "hydra_plugins.hydra_submitit_launcher",
}
REQUIRED = {"config": [], "evaluate": ["ckpt=x.pt"]}  # MISSING fields


def needs(module: str | None) -> None:
    if module and importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} not installed (pip install -e '.[sweep,slurm]')")


def compose_all(config: str, overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config, overrides=overrides, return_hydra_config=True)


def run(args: list[str], timeout: int = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env=env,
    )


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_every_sweep_config_is_listed_here():
    assert {p.stem for p in (CONF / "sweep").glob("*.yaml")} == set(SWEEPS)
    launchers = {p.stem for p in (CONF / "hydra" / "launcher").glob("*.yaml")}
    assert launchers == set(LAUNCHERS)


@pytest.mark.parametrize("sweep", sorted(SWEEPS))
def test_sweep_configs_compose_with_params_and_a_summary_callback(sweep):
    config, plugin = SWEEPS[sweep]
    needs(plugin)
    cfg = compose_all(config, [f"+sweep={sweep}", *REQUIRED[config]])
    assert cfg.hydra.sweeper.params, "a sweep config sets hydra.sweeper.params"
    assert (
        cfg.hydra.callbacks.sweep_summary._target_
        == "nmt.sweeps.callbacks.SweepSummary"
    )
    with open_dict(cfg):
        del cfg["hydra"]
    kind = EvaluateConfig if config == "evaluate" else TrainConfig
    obj = OmegaConf.to_object(cfg)
    assert isinstance(obj, kind)
    if kind is TrainConfig:
        assert 0 < obj.train.max_minutes <= 10  # a laptop-sized budget per job


def test_cell_attention_sweep_fixes_a_merge_mode_that_luong_dot_accepts():
    model = OmegaConf.to_object(compose_all("config", ["+sweep=cell_attention"]).model)
    assert model.merge_mode in ("sum", "ave", "mul")  # encoder output size == H


@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
@pytest.mark.parametrize("config", ["config", "evaluate"])
def test_launcher_configs_compose(launcher, config):
    needs(LAUNCHERS[launcher])
    cfg = compose_all(config, [f"hydra/launcher={launcher}", *REQUIRED[config]])
    launcher_cfg = cfg.hydra.launcher
    if launcher == "local_joblib":
        assert launcher_cfg.n_jobs == 2
    else:
        assert launcher_cfg._target_.endswith("SlurmLauncher")
        for key in ("partition", "gpus_per_node", "timeout_min", "cpus_per_task"):
            assert launcher_cfg[key] is not None, key
        assert launcher_cfg.mem_gb > 0


def test_task_functions_pickle_for_remote_launchers():
    """submitit and joblib ship the task function to another process with cloudpickle."""
    import functools

    import nmt.evaluate
    import nmt.train
    from nmt.sweeps.jobs import run_job

    cloudpickle = pytest.importorskip("cloudpickle")
    for module in (nmt.train, nmt.evaluate):
        task = module.main.__wrapped__  # what hydra.main hands to the launcher
        assert callable(cloudpickle.loads(cloudpickle.dumps(task)))
    job = functools.partial(run_job, nmt.train.run_train, prog="nmt.train")
    assert pickle.loads(pickle.dumps(job)).func is run_job


def test_sweep_report_does_not_import_hydra():
    code = "import sys, nmt.sweep_report; print('hydra' in sys.modules)"
    assert run(["-c", code]).stdout.strip() == "False"


def test_training_multirun_with_a_failing_job_writes_both_rows(tiny_corpus, tmp_path):
    sweep_dir = tmp_path / "sweep"
    proc = run(
        [
            "-m",
            "nmt.train",
            "-m",
            f"data.root={tiny_corpus}",
            *TINY_TRAIN,
            f"train.cache_dir={tmp_path}/cache",
            "model.merge_mode=bogus,concat",  # job 0 fails, job 1 must still run
            f"hydra.sweep.dir={sweep_dir}",
        ]
    )
    assert proc.returncode == 0, proc.stderr
    failed = json.loads((sweep_dir / "0" / "result.json").read_text())
    assert failed["status"] == "failed" and "bogus" in failed["error"]
    assert (
        "\n" not in failed["error"] and "model.merge_mode=bogus" in failed["overrides"]
    )
    ok = json.loads((sweep_dir / "1" / "result.json").read_text())
    assert ok["status"] == "ok" and ok["job"] == 1
    assert "model.merge_mode=concat" in ok["overrides"]
    for key in ("best_val_bleu", "best_val_chrf", "test_bleu", "test_chrf"):
        assert isinstance(ok[key], float), key
    for key in ("best_val_loss", "parameters", "tokens_per_s", "wall_time_s"):
        assert ok[key] is not None, key
    rows = read_csv(sweep_dir / "summary.csv")
    assert [(r["model.merge_mode"], r["status"]) for r in rows] == [
        ("concat", "ok"),
        ("bogus", "failed"),
    ]
    table = (sweep_dir / "summary.md").read_text()
    assert table.count("| concat | ok |") == 1 and "| bogus | failed |" in table
    assert "## Sweep summary" in proc.stdout  # printed at the end of the multirun
    assert "job 0 failed: ValueError" in proc.stderr
    assert "Validation curves of the jobs: curves.png" in table  # job 1's
    assert (sweep_dir / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_single_run_errors_stay_one_line_with_exit_status_2(tmp_path):
    proc = run(
        [
            "-m",
            "nmt.evaluate",
            f"ckpt={tmp_path}/missing.pt",
            f"hydra.run.dir={tmp_path}/run",
        ]
    )
    assert proc.returncode == 2  # single run: the error is not swallowed
    assert proc.stderr.strip().startswith("nmt.evaluate: error:")
    assert not (tmp_path / "run" / "result.json").exists()


def test_evaluate_without_ckpt_is_one_line_error(tmp_path):
    proc = run(["-m", "nmt.evaluate", f"hydra.run.dir={tmp_path}/run"])
    err = proc.stderr.strip()
    assert proc.returncode == 2 and len(err.splitlines()) == 1, err
    assert err.startswith("nmt.evaluate: error:") and "ckpt" in err


@pytest.mark.parametrize("launcher", ["basic", "local_joblib"])
def test_beam_multirun_reports_quality_speed_and_memory_per_width(
    launcher, tiny_checkpoint, tiny_corpus, tmp_path
):
    if launcher != "basic":
        needs(LAUNCHERS[launcher])
    sweep_dir = tmp_path / "beam"
    proc = run(
        [
            "-m",
            "nmt.evaluate",
            "-m",
            f"hydra/launcher={launcher}",
            f"ckpt={tiny_checkpoint}",
            "split=test",
            f"data.root={tiny_corpus}",
            "threads=1",
            "search.beam_size=2,0,1",  # 0 is refused: a failed row between two
            f"hydra.sweep.dir={sweep_dir}",
        ]
    )
    assert proc.returncode == 0, proc.stderr
    rows = read_csv(sweep_dir / "summary.csv")
    assert [(r["search.beam_size"], r["status"]) for r in rows] == [
        ("0", "failed"),
        ("1", "ok"),
        ("2", "ok"),
    ]
    for row in rows[1:]:
        assert float(row["bleu"]) >= 0 and float(row["sentences_per_s"]) > 0
        assert float(row["peak_mem_mb"]) >= 0 and "RSS" in row["peak_mem_note"]
    assert "beam_size must be >= 1" in rows[0]["error"]
    assert "| 1 | ok |" in (sweep_dir / "summary.md").read_text()
    assert "[HYDRA]" not in proc.stdout  # Hydra's own log lines go to stderr
    assert (sweep_dir / "summary.png").read_bytes()[:4] == b"\x89PNG"


def test_optuna_sweep_survives_a_failing_trial(tiny_corpus, tmp_path):
    needs("hydra_plugins.hydra_optuna_sweeper")
    sweep_dir = tmp_path / "optuna"
    proc = run(
        [
            "-m",
            "nmt.train",
            "-m",
            "+sweep=optuna_tpe",
            f"data.root={tiny_corpus}",
            *TINY_TRAIN,
            f"train.cache_dir={tmp_path}/cache",
            "hydra.sweeper.n_trials=4",
            "model.hidden_size=choice(16,24)",
            "model.merge_mode=choice(concat,bogus)",
            f"hydra.sweep.dir={sweep_dir}",
        ]
    )
    assert proc.returncode == 0, proc.stderr
    assert "best_value" in (sweep_dir / "optimization_results.yaml").read_text()
    assert len(read_csv(sweep_dir / "summary.csv")) == 4
