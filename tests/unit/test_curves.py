"""curves.png: the validation curves of runs, read from their metrics.jsonl."""

from __future__ import annotations

import pytest
from matplotlib.image import imread

from nmt.figures.canvas import DPI
from nmt.figures.curves import SIZE, Curve, plot_curves, read_run
from tests.conftest import write_metrics

PIXELS = (round(SIZE[1] * DPI), round(SIZE[0] * DPI))  # (height, width)


def check_picture(path) -> None:
    """A real PNG of the curves' size whose pixels are not all the same."""
    image = imread(path)
    assert image.shape[:2] == PIXELS
    assert image.std() > 0.01


def test_one_translation_run(tmp_path):
    curve = read_run(write_metrics(tmp_path / "gru"))
    assert curve.label == "gru"
    assert [r["step"] for r in curve.records] == [10, 20, 30, 40]
    plot_curves([curve], tmp_path / "c.png")
    check_picture(tmp_path / "c.png")


def test_runs_of_both_kinds_and_many_runs_share_one_picture(tmp_path):
    curves = [read_run(write_metrics(tmp_path / "lm", "lm", records=3))]
    curves += [
        Curve(f"${i}_run", read_run(write_metrics(tmp_path / f"r{i}")).records)
        for i in range(12)  # more than the ten colours; '$' is not math
    ]
    curves.append(Curve("_hidden?", curves[1].records))
    plot_curves(curves, tmp_path / "c.png")
    check_picture(tmp_path / "c.png")


def test_a_record_without_elapsed_time_is_drawn_against_steps_only(tmp_path):
    records = [{"step": 5, "val_loss": 2.0}, {"step": 9, "val_loss": 1.0}]
    plot_curves([Curve("old", records)], tmp_path / "c.png")
    check_picture(tmp_path / "c.png")


def test_what_is_not_a_run_with_records_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "metrics.jsonl").write_text("\n")
    cases = {
        "nowhere": "does not exist",
        "file": "is not a directory",
        ".": "has no metrics.jsonl",
        "empty": "metrics.jsonl holds no validation records",
    }
    for name, message in cases.items():
        with pytest.raises(ValueError, match=message):
            read_run(tmp_path / name)


def test_no_curves_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no runs"):
        plot_curves([], tmp_path / "c.png")
