"""summary.png: drawn for finished beam jobs, one line pair per other swept value."""

from __future__ import annotations

from pathlib import Path

from nmt.figures.beam_sweep import plot_beam_sweep
from nmt.sweeps.report import JobRow


def row(ckpt: str, beam: int, status: str = "ok") -> JobRow:
    metrics = {"beam_size": beam, "bleu": 20.0 + beam, "sentences_per_s": 50.0 / beam}
    return JobRow(
        job=beam,
        path=Path("."),
        overrides=[f"ckpt={ckpt}", f"search.beam_size={beam}"],
        status=status,
        metrics=metrics if status == "ok" else {},
    )


def test_groups_by_the_other_swept_override(tmp_path):
    rows = [row(c, b) for c in ("a.pt", "b.pt") for b in (1, 4)] + [
        row("a.pt", 9, "failed")
    ]
    assert plot_beam_sweep(rows, tmp_path / "s.png", group_by=["ckpt"])
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"


def test_nothing_finished_draws_nothing(tmp_path):
    assert not plot_beam_sweep([row("a.pt", 2, "failed")], tmp_path / "s.png")
    assert not (tmp_path / "s.png").exists()
