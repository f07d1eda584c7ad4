"""The pure parts of a job's record: objective values and result files."""

from __future__ import annotations

import json
import math

import pytest

from nmt.sweeps.jobs import objective, write_result


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        ({"best_val_bleu": 12.5}, 12.5),
        ({"best_val_bleu": 0}, 0.0),
        ({"status": "failed", "error": "ValueError: x"}, -1.0),
        ({"best_val_bleu": None}, -1.0),
        ({"best_val_bleu": math.nan}, -1.0),  # optuna 2.x refuses NaN
    ],
)
def test_objective_is_the_metric_or_a_worst_value(result, expected):
    assert objective(result, "best_val_bleu") == expected


def test_write_result_replaces_the_file_whole(tmp_path):
    write_result(tmp_path / "job", {"status": "ok", "bleu": 1.0})
    write_result(tmp_path / "job", {"status": "failed", "path": tmp_path})
    data = json.loads((tmp_path / "job" / "result.json").read_text())
    assert data == {"status": "failed", "path": str(tmp_path)}
    assert [p.name for p in (tmp_path / "job").iterdir()] == ["result.json"]
