"""`python -m nmt.plot RUN [RUN ...]`: where the PNG goes, labels, one-line errors."""

from __future__ import annotations

import pytest
from matplotlib.image import imread

from nmt.plot import labels, main
from tests.conftest import write_metrics
from tests.unit.test_curves import PIXELS


def test_one_run_draws_into_the_run_dir(tmp_path, capsys):
    run = write_metrics(tmp_path / "run")
    main([str(run)])
    assert capsys.readouterr().out == f"{run / 'curves.png'}\n"
    assert imread(run / "curves.png").shape[:2] == PIXELS


def test_several_runs_draw_into_the_current_dir_or_out(tmp_path, monkeypatch, capsys):
    runs = [
        str(write_metrics(tmp_path / n, k)) for n, k in [("a", "seq2seq"), ("b", "lm")]
    ]
    monkeypatch.chdir(tmp_path)
    main(runs)
    assert imread(tmp_path / "curves.png").shape[:2] == PIXELS
    main([*runs, "--out", str(tmp_path / "ab.PNG")])
    assert (tmp_path / "ab.PNG").read_bytes()[:4] == b"\x89PNG"
    assert capsys.readouterr().out.splitlines() == [
        "curves.png",
        str(tmp_path / "ab.PNG"),
    ]


def test_runs_of_the_same_name_are_labelled_by_their_paths(tmp_path):
    assert labels([tmp_path / "a" / "0", tmp_path / "b" / "1"]) == ["0", "1"]
    same = [tmp_path / "a" / "0", tmp_path / "b" / "0"]
    assert labels(same) == [str(p) for p in same]


@pytest.mark.parametrize(
    "args, message",
    [
        (["{tmp}/nowhere"], "nowhere does not exist"),
        (["{tmp}"], "has no metrics.jsonl"),
        (["{run}", "--out", "{tmp}/c.svg"], "--out must name a .png file"),
        (["{run}", "--out", "{tmp}/no/such/dir/c.png"], "No such file or directory"),
    ],
)
def test_bad_input_is_a_one_line_error(tmp_path, capsys, args, message):
    run = write_metrics(tmp_path / "run")
    with pytest.raises(SystemExit) as stop:
        main([a.format(tmp=tmp_path, run=run) for a in args])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("nmt.plot: error: ") and message in err, err
    assert err.count("\n") == 1
