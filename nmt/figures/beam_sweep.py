"""summary.png of a decode sweep: BLEU and sentences/s against beam size B.

Drawn on `canvas.new_figure` (matplotlib's object API, no pyplot state).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nmt.figures.canvas import new_figure, save_png

if TYPE_CHECKING:
    from nmt.sweeps.report import JobRow


def plot_beam_sweep(
    rows: Sequence[JobRow], path: Path, *, group_by: Sequence[str] = ()
) -> bool:
    """BLEU (left axis) and sentences/s (right axis) against beam size B.

    Args:
        rows: the sweep's jobs; finished ones with a beam_size are drawn.
        path: the PNG to write.
        group_by: other swept override keys; one pair of lines per combination.

    Returns:
        False (and writes nothing) without finished jobs.
    """
    done = [r for r in rows if r.status == "ok" and "beam_size" in r.metrics]
    if not done:
        return False
    groups: dict[str, list[JobRow]] = {}
    for row in done:
        label = " ".join(f"{k}={row.override(k)}" for k in group_by)
        groups.setdefault(label, []).append(row)
    fig = new_figure(7, 4.5)
    ax = fig.add_subplot()
    speed_ax = ax.twinx()
    for i, (label, group) in enumerate(sorted(groups.items())):
        group.sort(key=lambda r: r.metrics["beam_size"])
        widths = [r.metrics["beam_size"] for r in group]
        # one group: BLEU blue, speed orange; several: one colour per group
        colors = ("C0", "C1") if len(groups) == 1 else (f"C{i % 10}",) * 2
        suffix = f" ({label})" if label else ""
        bleu = [r.metrics.get("bleu") for r in group]
        speed = [r.metrics.get("sentences_per_s") for r in group]
        ax.plot(widths, bleu, "o-", color=colors[0], label=f"BLEU{suffix}")
        speed_ax.plot(
            widths, speed, "s--", color=colors[1], label=f"sentences/s{suffix}"
        )
    label_axes(ax, speed_ax, sorted({r.metrics["beam_size"] for r in done}))
    save_png(fig, path)
    return True


def label_axes(ax: Any, speed_ax: Any, widths: list[int]) -> None:
    """Log-scale B axis ticked at the swept widths, axis labels, one legend."""
    ax.set_xscale("log")
    ax.set_xticks(widths, [str(w) for w in widths])
    ax.minorticks_off()
    ax.set_xlabel("beam size B")
    ax.set_ylabel("BLEU (solid)")
    speed_ax.set_ylabel("sentences / s (dashed)")
    lines, labels = ax.get_legend_handles_labels()
    speed_lines, speed_labels = speed_ax.get_legend_handles_labels()
    ax.legend(lines + speed_lines, labels + speed_labels, fontsize=8)
    ax.set_title("Decoding: quality and speed against beam size")
