"""Training curves of one or several runs from their metrics.jsonl, as one PNG.

A 2 x 2 grid: the validation score (BLEU; bits per character for a char LM) and
the validation loss, against steps and against wall-clock minutes; one line per
run. TensorBoard (`RUN/tensorboard`) has more curves; this needs no server.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nmt.figures.canvas import new_figure, save_png
from nmt.training.progress import read_metrics

# the score drawn in the top row: the first of these any run records
SCORES = (("val_bleu", "val BLEU"), ("val_bpc", "val bits per character"))
STYLES = ("-", "--", ":", "-.")  # the 11th run on: the colours again, dashed
SIZE = (11.0, 7.5)  # inches: 1100 x 750 pixels


@dataclass(frozen=True)
class Curve:
    """One run's validation records (metrics.jsonl), oldest first."""

    label: str
    records: list[dict[str, Any]]


def read_run(run_dir: Path, label: str | None = None) -> Curve:
    """The validation records of a training run dir, labelled by its name.

    Raises:
        ValueError: `run_dir` is not a run dir or has no validation records yet.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        what = "does not exist" if not run_dir.exists() else "is not a directory"
        raise ValueError(f"{run_dir} {what} (expected a training run dir)")
    if not (run_dir / "metrics.jsonl").is_file():
        raise ValueError(
            f"{run_dir} has no metrics.jsonl: not a training run dir, or it has "
            "not validated yet"
        )
    records = read_metrics(run_dir)
    if not records:
        raise ValueError(f"{run_dir}/metrics.jsonl holds no validation records yet")
    return Curve(label or run_dir.resolve().name, records)


def _points(records: list[dict[str, Any]], x: str, y: str) -> tuple[list, list]:
    """(xs, ys) of the records that have both keys; minutes from elapsed_s."""
    pairs = [(r[x], r[y]) for r in records if x in r and y in r]
    scale = 1 / 60 if x == "elapsed_s" else 1
    return [a * scale for a, _ in pairs], [b for _, b in pairs]


def plot_curves(curves: Sequence[Curve], path: Path) -> None:
    """Draw `curves` into the PNG `path` (SIZE inches at canvas.DPI).

    Args:
        curves: one per run (at least one), drawn in this order (colour i % 10,
            then dashed); a run without a metric has no line in its plots.
        path: the PNG to write.
    """
    if not curves:
        raise ValueError("no runs to draw")
    keys = {k for c in curves for r in c.records for k in r}
    score, score_label = next(
        ((k, label) for k, label in SCORES if k in keys), SCORES[0]
    )
    rows = [(score, score_label), ("val_loss", f"val loss ({_loss_unit(curves)})")]
    columns = [
        ("step", "training step"),
        ("elapsed_s", "wall-clock minutes (set-up and validations included)"),
    ]
    fig = new_figure(*SIZE)
    axes = fig.subplots(len(rows), len(columns), squeeze=False)
    for i, curve in enumerate(curves):
        style = dict(
            color=f"C{i % 10}",
            linestyle=STYLES[i // 10 % len(STYLES)],
            marker="o",
            markersize=3,
            label=_legend_text(curve.label),
        )
        for (y, _), row_axes in zip(rows, axes):
            for (x, _), ax in zip(columns, row_axes):
                ax.plot(*_points(curve.records, x, y), **style)
    for (_, y_label), row_axes in zip(rows, axes):
        for (_, x_label), ax in zip(columns, row_axes):
            ax.set_xlabel(x_label)
            ax.set_ylabel(y_label)
            ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(
        handles,
        labels,
        loc="outside lower center",
        ncols=min(len(curves), 5),
        fontsize=8,
    )
    fig.suptitle("Validation curves")
    save_png(fig, path)


def _loss_unit(curves: Sequence[Curve]) -> str:
    """Nats per target token (translation) or per character (char LM: its
    records have val_bpc); both when the runs are of both kinds."""
    lm = [any("val_bpc" in r for r in c.records) for c in curves]
    if all(lm):
        return "nats per character"
    return "nats per target token" if not any(lm) else "nats per token or character"


def _legend_text(label: str) -> str:
    """A run label as the legend shows it: '$' drawn as itself (not math), and a
    leading '_' kept (matplotlib hides labels that start with one)."""
    text = label.replace("$", r"\$")
    return " " + text if text.startswith("_") else text
