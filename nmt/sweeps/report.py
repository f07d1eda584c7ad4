"""Summarise a Hydra multirun dir: job dirs -> rows -> summary.md/.csv, and a
picture: summary.png (decode sweeps) or curves.png (training sweeps).

Pure file reading and writing, no Hydra: used by the sweep callback and by
`python -m nmt.sweep_report DIR`, which rebuilds the summary of any sweep.
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from nmt.figures.beam_sweep import plot_beam_sweep
from nmt.figures.curves import Curve, plot_curves
from nmt.training.progress import read_metrics

# a job without result.json whose files changed this recently is "running"
RUNNING_WINDOW_S = 300.0
NOT_METRICS = ("task", "job", "overrides", "status", "error")


@dataclass(frozen=True)
class SweepKind:
    """Which metrics a sweep's table shows and what it is sorted by."""

    metrics: tuple[str, ...]
    sort_key: str
    descending: bool


KINDS = {
    "train": SweepKind(
        metrics=tuple(
            "best_val_bleu best_val_chrf test_bleu test_chrf best_val_loss parameters"
            " tokens_per_s wall_time_s steps stop_reason".split()
        ),
        sort_key="best_val_bleu",
        descending=True,
    ),
    "lm": SweepKind(  # nmt.train task=lm: character LM, lower loss is better
        metrics=tuple(
            "best_val_bpc best_val_loss parameters tokens_per_s wall_time_s steps"
            " stop_reason".split()
        ),
        sort_key="best_val_loss",
        descending=False,
    ),
    "evaluate": SweepKind(
        metrics=("beam_size", "bleu", "chrf", "sentences_per_s", "peak_mem_mb"),
        sort_key="beam_size",
        descending=False,
    ),
}


@dataclass
class JobRow:
    """One job of a sweep, as read from its directory."""

    job: int | None
    path: Path
    overrides: list[str]
    status: str  # ok | stopped | failed | running | missing
    error: str = ""
    task: str = ""  # nmt.train | nmt.evaluate (empty when there is no result)
    metrics: dict[str, Any] = field(default_factory=dict)

    def override(self, key: str) -> str | None:
        """Value of the override `key=...` (also matches `+key`, `++key`)."""
        for item in self.overrides:
            name, _, value = item.partition("=")
            if name.lstrip("+~") == key:
                return value
        return None


def job_dirs(sweep_dir: Path) -> list[Path]:
    """Sub-directories of `sweep_dir` that are Hydra jobs (have .hydra/ or result.json)."""
    return [
        d
        for d in sorted(Path(sweep_dir).iterdir())
        if d.is_dir()
        and not d.name.startswith(".")
        and ((d / ".hydra").is_dir() or (d / "result.json").is_file())
    ]


def read_job(path: Path, *, finished: bool, now: float | None = None) -> JobRow:
    """Row for one job dir; without result.json it is "running" or "missing".

    Args:
        path: the job's output dir.
        finished: the sweep is over, so a job without a result is "missing".
        now: current time (seconds since the epoch), for the running check.
    """
    result_file = path / "result.json"
    if result_file.is_file():
        try:
            result = json.loads(result_file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            result = {"status": "failed", "error": f"unreadable result.json: {error}"}
        metrics = {k: v for k, v in result.items() if k not in NOT_METRICS}
        job = result.get("job", dir_number(path))
        return JobRow(
            job=job,
            path=path,
            overrides=list(result.get("overrides") or read_overrides(path)),
            status=str(result.get("status", "ok")),
            error=str(result.get("error") or ""),
            task=str(result.get("task", "")),
            metrics=metrics,
        )
    age = (now or time.time()) - newest_mtime(path)
    running = not finished and age < RUNNING_WINDOW_S
    return JobRow(
        job=dir_number(path),
        path=path,
        overrides=read_overrides(path),
        status="running" if running else "missing",
        error="" if running else "no result.json (job crashed or was cut off)",
    )


def dir_number(path: Path) -> int | None:
    return int(path.name) if path.name.isdigit() else None


def read_overrides(path: Path) -> list[str]:
    """The job's overrides from `.hydra/overrides.yaml` (written when it starts)."""
    file = path / ".hydra" / "overrides.yaml"
    if not file.is_file():
        return []
    loaded = yaml.safe_load(file.read_text(encoding="utf-8"))
    return [str(item) for item in loaded or []]


def newest_mtime(path: Path) -> float:
    times = [p.stat().st_mtime for p in path.rglob("*") if p.is_file()]
    return max(times, default=path.stat().st_mtime)


def read_sweep(sweep_dir: Path, *, finished: bool = False) -> list[JobRow]:
    """Rows for every job dir in `sweep_dir`, in job order."""
    now = time.time()
    rows = [read_job(d, finished=finished, now=now) for d in job_dirs(sweep_dir)]
    return sorted(rows, key=lambda r: (r.job is None, r.job or 0, r.path.name))


def detect_kind(rows: Sequence[JobRow]) -> str:
    """Kind of sweep: evaluate (nmt.evaluate jobs), lm (char LM training) or train."""
    if any(r.task == "nmt.evaluate" or "sentences_per_s" in r.metrics for r in rows):
        return "evaluate"
    return "lm" if any("best_val_bpc" in r.metrics for r in rows) else "train"


def sort_value(row: JobRow, key: str) -> float | None:
    """`key` from the metrics, else from an override ending in `.key` (failed jobs)."""
    value: Any = row.metrics.get(key)
    if value is None:
        for item in row.overrides:
            name, _, text = item.partition("=")
            if name.lstrip("+~").split(".")[-1] == key:
                value = text
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def sort_rows(rows: Sequence[JobRow], kind: SweepKind) -> list[JobRow]:
    """Rows with a value first, by the objective; then the rest in job order."""

    def key(row: JobRow) -> tuple[bool, float, int]:
        value = sort_value(row, kind.sort_key)
        if value is None:
            return (True, 0.0, row.job or 0)
        return (False, -value if kind.descending else value, row.job or 0)

    return sorted(rows, key=key)


def split_overrides(rows: Sequence[JobRow]) -> tuple[list[str], list[str]]:
    """(overrides shared by all jobs, keys whose values differ between jobs)."""
    first: dict[str, str] = {}  # key -> the override as first written
    for row in rows:
        for item in row.overrides:
            first.setdefault(item.partition("=")[0].lstrip("+~"), item)
    fixed, varying = [], []
    for name, item in first.items():
        values = {row.override(name) for row in rows}
        if len(values) == 1 and None not in values:
            fixed.append(item)
        else:
            varying.append(name)
    return fixed, varying


def format_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def short_value(text: str | None) -> str | None:
    """Optuna-style `0.0014913872993421574` -> `0.001491` (the csv keeps all digits)."""
    if text is None or len(text) <= 8:
        return text
    try:
        return f"{float(text):.4g}"
    except ValueError:
        return text


def metric_columns(rows: Sequence[JobRow], kind: SweepKind) -> list[str]:
    return [m for m in kind.metrics if any(m in r.metrics for r in rows)]


def to_markdown(rows: Sequence[JobRow], kind: SweepKind, title: str) -> str:
    """The summary table, best first, with a header line of counts and fixed args."""
    fixed, varying = split_overrides(rows)
    swept = {k.split(".")[-1] for k in varying}  # e.g. beam_size: already a column
    metrics = [m for m in metric_columns(rows, kind) if m not in swept]
    errors = any(r.error for r in rows)
    columns = ["job", *varying, "status", *metrics] + (["error"] if errors else [])
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.status] = counts.get(row.status, 0) + 1
    order = "descending" if kind.descending else "ascending"
    lines = [
        f"## Sweep summary: {title}",
        "",
        f"{len(rows)} jobs: "
        + ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        + f". Sorted by {kind.sort_key} ({order}).",
    ]
    if fixed:
        lines.append("Same in every job: `" + " ".join(fixed) + "`.")
    notes = {r.metrics.get("peak_mem_note") for r in rows} - {None}
    lines += [f"peak_mem_mb: {note}." for note in sorted(notes)]
    lines += ["", "| " + " | ".join(columns) + " |"]
    lines.append("|" + "|".join("---" for _ in columns) + "|")
    for row in sort_rows(rows, kind):
        cells = [row.job, *(short_value(row.override(k)) for k in varying)]
        cells.append(row.status)
        cells += [row.metrics.get(m) for m in metrics]
        cells += [row.error[:120]] if errors else []
        lines.append("| " + " | ".join(format_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def write_csv(rows: Sequence[JobRow], kind: SweepKind, path: Path) -> None:
    """One row per job: overrides (joined and per varying key), status, error, metrics."""
    _, varying = split_overrides(rows)
    known = metric_columns(rows, kind)
    extra = sorted({m for r in rows for m in r.metrics} - set(known))
    columns = ["job", "overrides", *varying, "status", "error", *known, *extra, "dir"]
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns, restval="")
        writer.writeheader()
        for row in sort_rows(rows, kind):
            values = {
                m: json.dumps(v) if isinstance(v, dict | list) else v
                for m, v in row.metrics.items()
            }
            values |= {k: row.override(k) for k in varying}
            values |= {
                "job": row.job,
                "overrides": " ".join(row.overrides),
                "status": row.status,
                "error": row.error,
                "dir": str(row.path),
            }
            writer.writerow(values)


def job_curves(rows: Sequence[JobRow]) -> list[Curve]:
    """The validation records of the jobs that have any (finished or not), each
    labelled by its job number and swept values: `3 cell=gru attention=none`."""
    _, varying = split_overrides(rows)
    curves = []
    for row in rows:
        records = read_metrics(row.path)
        if records:
            values = [
                f"{k.split('.')[-1]}={short_value(row.override(k))}" for k in varying
            ]
            name = row.path.name if row.job is None else str(row.job)
            curves.append(Curve(" ".join([name, *values]), records))
    return curves


def write_report(
    sweep_dir: Path,
    *,
    kind: str | None = None,
    plot: bool = True,
    finished: bool = False,
) -> str:
    """Write summary.md and summary.csv, and summary.png for decode sweeps or
    curves.png (`nmt.plot` of all the jobs) for training sweeps.

    Args:
        sweep_dir: the multirun dir (`hydra.sweep.dir`), holding one dir per job.
        kind: "train", "lm" or "evaluate"; None = detect from the results.
        plot: also draw summary.png or curves.png.
        finished: the sweep has ended (jobs without result.json are "missing").

    Returns:
        The markdown summary.
    """
    sweep_dir = Path(sweep_dir)
    rows = read_sweep(sweep_dir, finished=finished)
    spec = KINDS[kind or detect_kind(rows)]
    text = to_markdown(rows, spec, str(sweep_dir))
    write_csv(rows, spec, sweep_dir / "summary.csv")
    if plot and spec is KINDS["evaluate"]:
        others = [k for k in split_overrides(rows)[1] if not k.endswith("beam_size")]
        if plot_beam_sweep(rows, sweep_dir / "summary.png", group_by=others):
            text += "\nPlot: summary.png\n"
        else:
            text += "\nNo plot: no finished job.\n"
    elif plot:
        curves = job_curves(rows)
        if curves:
            plot_curves(curves, sweep_dir / "curves.png")
            text += "\nValidation curves of the jobs: curves.png\n"
        else:
            text += "\nNo curves: no job has validated yet.\n"
    (sweep_dir / "summary.md").write_text(text, encoding="utf-8")
    return text
