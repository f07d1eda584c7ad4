"""Learning-rate schedule and patience bookkeeping shared by both training loops."""

from __future__ import annotations

import pytest

from nmt.training.progress import LoopConfig, Progress, after_validation, schedule_lr


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
        schedule_lr(LoopConfig(schedule="cosine"), Progress())
