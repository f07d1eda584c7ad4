"""Learning-rate schedule, patience, limits and the metrics log shared by both
training loops."""

from __future__ import annotations

import pytest

from nmt.training.progress import (
    LoopConfig,
    Progress,
    after_validation,
    append_metrics,
    forget_metrics_after,
    limit_reached,
    read_metrics,
    schedule_lr,
)


def test_plateau_halves_lr_after_patience_and_a_gain_resets():
    cfg = LoopConfig(lr=1e-3, schedule="plateau", decay_patience=2, min_lr=3e-4)
    p = Progress(lr=1e-3)
    after_validation(cfg, p, improved=False, metric="val loss")
    assert p.lr == 1e-3 and p.bad_validations == 1
    after_validation(cfg, p, improved=False, metric="val loss")
    assert p.lr == 5e-4 and p.bad_lr == 0 and p.bad_validations == 2
    after_validation(cfg, p, improved=False, metric="val loss")
    after_validation(cfg, p, improved=False, metric="val loss")
    assert p.lr == 3e-4  # min_lr
    after_validation(cfg, p, improved=True, metric="val loss")
    assert p.bad_validations == 0 and p.lr == 3e-4


def test_constant_never_decays_and_warmup_decay_peaks_at_warmup():
    p = Progress(lr=1e-3)
    for _ in range(5):
        after_validation(LoopConfig(schedule="constant"), p, False, "val BLEU")
    assert p.lr == 1e-3
    cfg = LoopConfig(lr=1e-3, schedule="warmup_decay", warmup_steps=10)
    assert schedule_lr(cfg, Progress(step=4)) == pytest.approx(5e-4)
    assert schedule_lr(cfg, Progress(step=9)) == pytest.approx(1e-3)
    assert schedule_lr(cfg, Progress(step=39)) == pytest.approx(5e-4)
    with pytest.raises(ValueError, match="unknown schedule"):
        schedule_lr(LoopConfig(schedule="linear"), Progress())


def test_cosine_warms_up_then_ends_at_min_lr_on_max_steps():
    cfg = LoopConfig(
        lr=1e-3, min_lr=1e-5, schedule="cosine", warmup_steps=10, max_steps=110
    )
    lrs = [schedule_lr(cfg, Progress(step=s)) for s in range(120)]
    assert lrs[4] == pytest.approx(5e-4) and lrs[9] == pytest.approx(1e-3)
    assert lrs[59] == pytest.approx((1e-3 + 1e-5) / 2)  # half way down
    assert lrs[109] == pytest.approx(1e-5) and lrs[119] == pytest.approx(1e-5)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:]))
    with pytest.raises(ValueError, match="train.max_steps"):
        LoopConfig(schedule="cosine", warmup_steps=0, max_steps=0)


@pytest.mark.parametrize(
    ("limits", "progress", "reason"),
    [
        ({}, {"step": 10**6, "epoch": 99}, None),
        ({"max_steps": 5}, {"step": 5}, "max_steps=5"),
        ({"max_steps": 5}, {"step": 4}, None),
        ({"max_epochs": 2}, {"epoch": 2}, "max_epochs=2"),
        ({"max_minutes": 0.5}, {"elapsed": 30.0}, "max_minutes=0.5"),
        ({"patience": 3}, {"bad_validations": 3}, "no val BLEU gain in 3 validations"),
    ],
)
def test_limit_reached_names_the_first_limit(limits, progress, reason):
    cfg = LoopConfig(**limits)
    assert limit_reached(cfg, Progress(**progress), "val BLEU") == reason


def test_max_minutes_keeps_time_for_the_work_after_the_last_step():
    cfg, progress = LoopConfig(max_minutes=1), Progress(elapsed=50.0)
    assert limit_reached(cfg, progress, "val BLEU", reserve=5.0) is None
    assert limit_reached(cfg, progress, "val BLEU", reserve=10.0) == "max_minutes=1"


def test_metrics_log_appends_and_reads_back(tmp_path):
    assert read_metrics(tmp_path) == []
    append_metrics(tmp_path, {"step": 1, "val_loss": 2.5})
    append_metrics(tmp_path, {"step": 2, "val_loss": 2.0})
    assert read_metrics(tmp_path) == [
        {"step": 1, "val_loss": 2.5},
        {"step": 2, "val_loss": 2.0},
    ]


def test_a_line_cut_short_is_skipped_and_dropped_at_resume(tmp_path, caplog):
    append_metrics(tmp_path, {"step": 1, "val_loss": 2.5})
    append_metrics(tmp_path, {"step": 2, "val_loss": 2.0})
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 3, "val_lo')  # a kill or a full disk mid-append
    assert [r["step"] for r in read_metrics(tmp_path)] == [1, 2]
    assert "line 3 is not a validation record" in caplog.text
    assert forget_metrics_after(tmp_path, 1) == 1
    assert (tmp_path / "metrics.jsonl").read_text() == '{"step": 1, "val_loss": 2.5}\n'
