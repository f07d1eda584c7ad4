"""sweep_report on hand-made job dirs: rows, order, failed/missing jobs, files."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
from matplotlib.image import imread

from nmt.figures.canvas import DPI
from nmt.figures.curves import SIZE
from nmt.sweep_report import main
from nmt.sweeps.report import KINDS, job_curves, read_job, read_sweep, write_report
from tests.conftest import write_metrics

DATA = "data.root=/corpus"


def make_job(sweep: Path, num: int, overrides: list[str], result: dict | None) -> Path:
    job = sweep / str(num)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(
        "".join(f"- {o}\n" for o in overrides)
    )
    if result is not None:
        full = {"task": "nmt.train", "job": num, "overrides": overrides, **result}
        (job / "result.json").write_text(json.dumps(full))
    return job


@pytest.fixture
def train_sweep(tmp_path: Path) -> Path:
    ok = {"status": "ok", "best_val_loss": 2.0, "test_bleu": 9.0, "parameters": 99}
    make_job(tmp_path, 0, [DATA, "model.cell=rnn"], {**ok, "best_val_bleu": 10.5})
    make_job(
        tmp_path,
        1,
        [DATA, "model.cell=bogus"],
        {"status": "failed", "error": "ValueError: unknown cell 'bogus'"},
    )
    make_job(tmp_path, 2, [DATA, "model.cell=gru"], {**ok, "best_val_bleu": 20.25})
    make_job(tmp_path, 3, [DATA, "model.cell=lstm"], None)  # cut off
    (tmp_path / ".submitit").mkdir()  # not a job
    return tmp_path


def test_rows_have_status_and_overrides(train_sweep):
    rows = read_sweep(train_sweep, finished=True)
    assert [r.job for r in rows] == [0, 1, 2, 3]
    assert [r.status for r in rows] == ["ok", "failed", "ok", "missing"]
    assert rows[1].error.startswith("ValueError")
    assert rows[3].overrides == [DATA, "model.cell=lstm"]  # from .hydra/
    assert rows[2].metrics["best_val_bleu"] == 20.25


def test_job_without_result_is_running_while_its_files_are_fresh(train_sweep):
    job = train_sweep / "3"
    assert read_job(job, finished=False).status == "running"
    old = job.stat().st_mtime - 3600
    for path in [job, *job.rglob("*")]:
        os.utime(path, (old, old))
    assert read_job(job, finished=False).status == "missing"


def test_markdown_is_sorted_by_val_bleu_and_keeps_failed_and_missing(train_sweep):
    text = write_report(train_sweep, finished=True)
    table = [line for line in text.splitlines() if line.startswith("| ")]
    header, body = table[0], table[1:]
    assert header.startswith("| job | model.cell | status | best_val_bleu")
    assert header.endswith("| error |")
    assert [line.split(" | ")[1] for line in body] == ["gru", "rnn", "bogus", "lstm"]
    assert "20.25" in body[0] and "unknown cell 'bogus'" in body[2]
    assert "missing" in body[3]
    assert f"Same in every job: `{DATA}`" in text
    assert "4 jobs: 1 failed, 1 missing, 2 ok" in text
    assert (train_sweep / "summary.md").read_text() == text
    assert not (train_sweep / "summary.png").exists()  # training sweeps: no plot


def test_csv_has_one_row_per_job_with_overrides_status_error_metrics(train_sweep):
    write_report(train_sweep, finished=True)
    with open(train_sweep / "summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4
    by_cell = {r["model.cell"]: r for r in rows}
    assert by_cell["gru"]["overrides"] == f"{DATA} model.cell=gru"
    assert by_cell["gru"]["best_val_bleu"] == "20.25"
    assert by_cell["bogus"]["status"] == "failed" and by_cell["bogus"]["error"]
    assert by_cell["lstm"]["status"] == "missing"


def test_training_sweep_draws_the_curves_of_the_jobs_that_validated(train_sweep):
    text = write_report(train_sweep, finished=True)
    assert "No curves: no job has validated yet." in text
    assert not (train_sweep / "curves.png").exists()
    write_metrics(train_sweep / "0")
    write_metrics(train_sweep / "3", records=2)  # cut off after two validations
    curves = job_curves(read_sweep(train_sweep, finished=True))
    assert [c.label for c in curves] == ["0 cell=rnn", "3 cell=lstm"]
    text = write_report(train_sweep, finished=True)
    assert "Validation curves of the jobs: curves.png" in text
    image = imread(train_sweep / "curves.png")
    assert image.shape[:2] == (round(SIZE[1] * DPI), round(SIZE[0] * DPI))
    write_report(train_sweep, finished=True, plot=False)  # --no-plot: no curves
    assert "curves.png" not in (train_sweep / "summary.md").read_text()


def eval_result(beam: int, bleu: float, speed: float) -> dict:
    return {
        "task": "nmt.evaluate",
        "status": "ok",
        "beam_size": beam,
        "bleu": bleu,
        "chrf": bleu + 20,
        "sentences_per_s": speed,
        "peak_mem_mb": 3.0 * beam,
        "peak_mem_note": "CPU peak RSS growth above the start",
    }


def test_evaluate_sweep_is_sorted_by_beam_and_plotted(tmp_path):
    for num, beam in enumerate([10, 1, 5]):
        make_job(
            tmp_path,
            num,
            ["ckpt=best.pt", f"search.beam_size={beam}"],
            eval_result(beam, 20 + beam / 10, 100 / beam),
        )
    make_job(tmp_path, 3, ["ckpt=best.pt", "search.beam_size=2"], None)
    text = write_report(tmp_path, finished=True)  # kind detected from results
    body = [line for line in text.splitlines() if line.startswith("| ")][1:]
    assert [line.split(" | ")[1] for line in body] == ["1", "2", "5", "10"]
    assert "peak_mem_mb: CPU peak RSS growth" in text
    png = tmp_path / "summary.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_rebuilds_a_summary_and_refuses_a_non_sweep(train_sweep, tmp_path, capsys):
    assert main([str(train_sweep), "--kind", "train"]) == 0
    assert "| gru |" in capsys.readouterr().out
    assert (train_sweep / "summary.csv").is_file()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SystemExit) as exit_info:
        main([str(empty)])
    assert exit_info.value.code == 2


def test_kinds_sort_train_by_val_bleu_and_evaluate_by_beam():
    assert (KINDS["train"].sort_key, KINDS["train"].descending) == (
        "best_val_bleu",
        True,
    )
    assert (KINDS["evaluate"].sort_key, KINDS["evaluate"].descending) == (
        "beam_size",
        False,
    )
