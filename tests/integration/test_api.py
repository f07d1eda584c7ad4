"""The Python API (`nmt.load`): what the CLIs print, byte for byte, and cheap to import."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import nmt
from nmt.api import GenerationModel, Translation, TranslationModel
from nmt.training.checkpoint import CheckpointError
from tests.conftest import PAIRS, REPO

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
# 40 lines, so batches of 2 span several of translate's chunks (batch size x 8)
LINES = [src for src, _ in PAIRS] * 3 + ["", "sehr " * 300, "   ", PAIRS[0][0]]


def cli(*args: str, stdin: str = "") -> str:
    proc = subprocess.run(
        [sys.executable, "-m", *args, "--threads", "1"],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env=ENV,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_import_nmt_is_cheap():
    code = "import sys, nmt; print('torch' in sys.modules, callable(nmt.load))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO
    )
    assert out.stdout.split() == ["False", "True"], out.stderr


@pytest.mark.parametrize("beam", [1, 3])
def test_translate_returns_what_the_cli_prints(tiny_checkpoint, beam):
    model = nmt.load(tiny_checkpoint, precision="fp32")
    assert isinstance(model, TranslationModel) and model.src_lang == "de"
    texts = model.translate(LINES, beam=beam, batch_size=2)
    assert len(texts) == len(LINES) and all(isinstance(t, str) for t in texts)
    args = ["nmt.translate", "--ckpt", str(tiny_checkpoint), "--precision", "fp32"]
    args += ["--beam", str(beam), "--batch-size", "2"]
    printed = cli(*args, stdin="\n".join(LINES) + "\n")
    assert "".join(t + "\n" for t in texts) == printed
    assert model.translate(LINES[2], beam=beam, batch_size=2) == texts[2]


def test_nbest_and_details_match_the_cli_nbest_list(tiny_checkpoint):
    model = nmt.load(tiny_checkpoint, precision="fp32")
    found = model.translate(LINES[:5], beam=3, nbest=2, details=True)
    args = ["nmt.translate", "--ckpt", str(tiny_checkpoint), "--precision", "fp32"]
    printed = cli(*args, "--beam", "3", "--nbest", "2", stdin="\n".join(LINES[:5]))
    ours = [
        f"{i} ||| {t.text} ||| logprob= {t.log_prob:.4f} ||| {t.score:.4f}\n"
        for i, hyps in enumerate(found)
        for t in hyps
    ]
    assert "".join(ours) == printed
    assert all(isinstance(t, Translation) and t.attention is None for t in found[0])
    texts = model.translate(LINES[:5], beam=3, nbest=2)
    assert [[t.text for t in hyps] for hyps in found] == texts


def test_attention_comes_with_the_pieces_it_relates(tiny_checkpoint):
    model = nmt.load(tiny_checkpoint, precision="fp32")
    best = model.translate(PAIRS[1][0], attention=True)
    assert isinstance(best, Translation) and best.attention is not None
    rows, cols = best.attention.shape
    assert (rows, cols) == (len(best.target_pieces), len(best.source_pieces))
    assert "".join(best.source_pieces).replace(" ", "") == PAIRS[1][0].replace(" ", "")
    if rows:
        assert best.attention.sum(dim=1).sub(1).abs().max() < 1e-4  # distributions
    assert model.translate("", attention=True).source_pieces == ()


def test_generate_returns_what_the_cli_prints(tiny_lm_checkpoint):
    model = nmt.load(tiny_lm_checkpoint, precision="fp32")
    assert isinstance(model, GenerationModel)
    args = ["nmt.generate", "--ckpt", str(tiny_lm_checkpoint), "--precision", "fp32"]
    args += ["--prompt", "ROMEO:", "--max-chars", "40"]
    sampled = model.generate("ROMEO:", max_chars=40, seed=3, num_samples=2, top_k=5)
    printed = cli(*args, "--seed", "3", "--num-samples", "2", "--top-k", "5")
    assert ("\n" + "-" * 40 + "\n").join("ROMEO:" + s for s in sampled) + "\n" == (
        printed
    )
    one = model.generate("ROMEO:", max_chars=40, seed=3)
    assert isinstance(one, str) and one == model.generate(
        "ROMEO:", max_chars=40, seed=3
    )
    best = model.generate("ROMEO:", max_chars=40, beam=3)
    assert "ROMEO:" + best + "\n" == cli(*args, "--beam", "3")


def test_bad_settings_and_files_are_clear_errors(tiny_checkpoint, tiny_lm_checkpoint):
    with pytest.raises(CheckpointError, match="does not exist"):
        nmt.load(REPO / "no-such-model.pt")
    with pytest.raises(ValueError, match="nbest must be between 1 and beam_size"):
        nmt.load(tiny_checkpoint).translate(["x"], beam=2, nbest=3)
    lm = nmt.load(tiny_lm_checkpoint)
    with pytest.raises(ValueError, match="temperature set"):
        lm.generate("x", beam=2, temperature=0.5)
    with pytest.raises(ValueError, match="num_samples 3 must be between 1 and beam"):
        lm.generate("x", beam=2, num_samples=3)


def test_load_takes_a_list_of_checkpoints_as_an_ensemble(
    tiny_checkpoint, tiny_checkpoint_b
):
    paths = [str(tiny_checkpoint), str(tiny_checkpoint_b)]
    model = nmt.load(paths, threads=1)
    assert isinstance(model, TranslationModel)
    assert len(model.translator.models) == 2
    lines = [src for src, _ in PAIRS[:4]]
    args = ["nmt.translate", "--ckpt", paths[0], "--ckpt", paths[1]]
    assert model.translate(lines) == cli(*args, stdin="\n".join(lines)).splitlines()
