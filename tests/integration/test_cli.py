"""The CLIs in subprocesses: line count/order on adversarial input, clear errors, Hydra apps."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import PAIRS, REPO, TINY_TRAIN

CPU = torch.device("cpu")


def run(args, *, input_bytes=b"", timeout=120):
    return subprocess.run(
        [sys.executable, *args],
        input=input_bytes,
        capture_output=True,
        timeout=timeout,
        cwd=REPO,
        env={**__import__("os").environ, "OMP_NUM_THREADS": "1"},
    )


def test_translate_keeps_line_count_and_order_on_adversarial_input(tiny_checkpoint):
    lines = [
        PAIRS[0][0].encode(),
        b"",
        PAIRS[1][0].encode(),
        b"\xff\xfe broken utf8",
        ("sehr " * 400).encode(),
        "😀 漢字 ﬁ".encode(),
        b"   ",
        b"\t",
        PAIRS[2][0].encode() + b"\r",
        "line\u2028sep\x85nel\x0bvt".encode(),
        b"\x00\x1c\x1d\x1e nul " * 50,
        ("x" * 100_000).encode(),  # read only as far as the source cap needs
        PAIRS[0][0].encode(),
    ]
    proc = run(
        [
            "-m",
            "nmt.translate",
            "--ckpt",
            str(tiny_checkpoint),
            "--beam",
            "2",
            "--batch-size",
            "3",
            "--threads",
            "1",
        ],
        input_bytes=b"\n".join(lines) + b"\n",
    )
    assert proc.returncode == 0, proc.stderr.decode()
    out = proc.stdout.decode().split("\n")
    assert out[-1] == "" and len(out) - 1 == len(lines)
    assert out[1] == "" and out[6] == ""
    assert out[0] == out[-2]  # same input, same answer, wherever it sits
    assert len(proc.stdout.decode().splitlines()) == len(lines)  # the strictest split
    err = proc.stderr.decode()
    assert "not valid UTF-8" in err and "unknown to the model" in err
    assert "warning: line 5 has 2000 characters; translating the first" in err
    assert "warning: line 12 has 100000 characters; translating the first" in err


def test_translate_source_and_target_caps(tiny_checkpoint):
    def translate(*options: str) -> subprocess.CompletedProcess:
        args = ["--ckpt", str(tiny_checkpoint), "--threads", "1", *options]
        line = b"a b c d e f g h i j"  # one or two pieces a letter, short in characters
        return run(["-m", "nmt.translate", *args], input_bytes=line + b"\n")

    assert b"translating" not in translate().stderr  # the model's limit: 100
    cut = translate("--max-src-len", "4", "--max-len", "2")
    assert re.search(
        rb"warning: line 1 has \d+ tokens; translating its first 4\n", cut.stderr
    )
    assert len(cut.stdout.split()) <= 2  # at most 2 target pieces
    assert translate("--max-len", "-1").returncode == 2


def test_translate_nbest_and_scores(tiny_checkpoint, tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("".join(de + "\n" for de, _ in PAIRS[:3]))
    proc = run(
        [
            "-m",
            "nmt.translate",
            "--ckpt",
            str(tiny_checkpoint),
            "--input",
            str(src),
            "--beam",
            "3",
            "--nbest",
            "2",
        ]
    )
    assert proc.returncode == 0, proc.stderr.decode()
    rows = [r.split(" ||| ") for r in proc.stdout.decode().splitlines()]
    assert [int(r[0]) for r in rows] == [0, 0, 1, 1, 2, 2]
    assert all(len(r) == 4 and r[2].startswith("logprob= ") for r in rows)
    assert all(float(rows[i][3]) >= float(rows[i + 1][3]) for i in (0, 2, 4))
    proc = run(
        [
            "-m",
            "nmt.translate",
            "--ckpt",
            str(tiny_checkpoint),
            "--input",
            str(src),
            "--scores",
        ]
    )
    assert all("\t" in r for r in proc.stdout.decode().splitlines())


@pytest.mark.parametrize("bad", ["missing", "corrupt", "directory"])
def test_translate_bad_checkpoint_is_one_line_error(bad, tmp_path):
    path = tmp_path / "x.pt"
    if bad == "corrupt":
        path.write_bytes(b"not a checkpoint at all")
    elif bad == "directory":
        path.mkdir()
    proc = run(["-m", "nmt.translate", "--ckpt", str(path)], input_bytes=b"hallo\n")
    err = proc.stderr.decode().strip()
    assert proc.returncode == 2
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err


def test_translate_nbest_larger_than_beam_is_refused(tiny_checkpoint):
    proc = run(
        [
            "-m",
            "nmt.translate",
            "--ckpt",
            str(tiny_checkpoint),
            "--beam",
            "2",
            "--nbest",
            "3",
        ],
        input_bytes=b"hallo\n",
    )
    assert proc.returncode == 2 and "--nbest" in proc.stderr.decode()


@pytest.mark.parametrize(
    ("option", "value", "says"),
    [
        ("--nbest", "-1", "--nbest must be between 0"),
        ("--beam", "-2", "beam_size must be >= 1"),
        ("--batch-size", "0", "batch_size must be >= 1"),
        ("--threads", "-3", "threads must be >= 0"),
        ("--len-penalty", "nan", "len_penalty must be a finite number"),
        ("--max-src-len", "-1", "max_src_len must be >= 0"),
        ("--device", "foo", "unknown device 'foo'"),
    ],
)
def test_translate_bad_option_values_are_one_line_errors(
    tiny_checkpoint, option, value, says
):
    args = ["-m", "nmt.translate", "--ckpt", str(tiny_checkpoint), option, value]
    proc = run(args, input_bytes=b"hallo\n")
    err = proc.stderr.decode().strip()
    assert proc.returncode == 2 and proc.stdout == b""
    assert len(err.splitlines()) == 1 and says in err, err


def test_translate_refuses_to_write_over_its_input(tiny_checkpoint, tmp_path):
    path = tmp_path / "in.de"
    path.write_bytes(b"hallo\nwelt\n")
    args = ["--ckpt", str(tiny_checkpoint), "--input", str(path)]
    proc = run(["-m", "nmt.translate", *args, "--output", str(path)])
    assert proc.returncode == 2 and "is the input file" in proc.stderr.decode()
    assert path.read_bytes() == b"hallo\nwelt\n"


def test_translate_into_a_closed_pipe_ends_quietly(tiny_checkpoint):
    """`nmt.translate | head -1`: no BrokenPipeError traceback, killed by SIGPIPE
    like any Unix filter."""
    signal = pytest.importorskip("signal")
    if not hasattr(signal, "SIGPIPE"):
        pytest.skip("no SIGPIPE on this platform")
    args = ["--ckpt", str(tiny_checkpoint), "--batch-size", "1", "--threads", "1"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "nmt.translate", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
    )
    proc.stdin.write(b"hallo welt\n" * 200)
    proc.stdin.close()
    assert proc.stdout.readline()  # the first chunk's first line
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == -signal.SIGPIPE, err
    assert "Traceback" not in err and "BrokenPipeError" not in err, err


def test_translate_warnings_number_lines_across_chunks(tiny_checkpoint):
    lines = b"hallo\n" * 9 + "hallo \u6f22\u5b57\n".encode()  # line 10: unknown
    args = ["--ckpt", str(tiny_checkpoint), "--batch-size", "1", "--threads", "1"]
    proc = run(["-m", "nmt.translate", *args], input_bytes=lines)
    err = proc.stderr.decode()
    assert proc.returncode == 0, err
    assert "warning: line 10 has characters unknown" in err, err
    assert len(proc.stdout.splitlines()) == 10


@pytest.mark.parametrize("precision", ["int8", "int4"])
def test_translate_int8_precision_and_unknown_precision(tiny_checkpoint, precision):
    """int8 decoding answers every line; an unknown precision is one error line."""
    args = ["-m", "nmt.translate", "--ckpt", str(tiny_checkpoint), "--threads", "1"]
    proc = run([*args, "--precision", precision], input_bytes=b"hallo\n\nwelt\n")
    if precision == "int4":
        err = proc.stderr.decode().strip()
        assert proc.returncode == 2 and "int8" in err and len(err.splitlines()) == 1
        return
    assert proc.returncode == 0, proc.stderr.decode()
    assert len(proc.stdout.decode().split("\n")) == 4


def test_translate_workers_answer_like_one_worker(tiny_checkpoint):
    """Two decoding workers (2 threads) print the same lines, in order, as one."""
    args = ["-m", "nmt.translate", "--ckpt", str(tiny_checkpoint), "--threads", "2"]
    lines = b"hallo\n\nwelt\nein mann\nder hund schl\xc3\xa4ft .\nzwei\n"
    one = run([*args, "--workers", "1", "--batch-size", "2"], input_bytes=lines)
    two = run([*args, "--workers", "2", "--batch-size", "2"], input_bytes=lines)
    assert one.returncode == 0 and two.returncode == 0, two.stderr.decode()
    assert two.stdout == one.stdout and len(two.stdout.splitlines()) == 6


def test_evaluate_prints_scores_and_writes_json(tiny_checkpoint, tiny_corpus, tmp_path):
    proc = run(
        [
            "-m",
            "nmt.evaluate",
            f"ckpt={tiny_checkpoint}",
            "split=test",
            f"data.root={tiny_corpus}",
            "search.beam_size=2",
            "threads=1",
            f"hydra.run.dir={tmp_path}",
        ]
    )
    assert proc.returncode == 0, proc.stderr.decode()
    out = proc.stdout.decode()
    assert "BLEU = " in out and "nrefs:1|case:mixed" in out and "sentences/s" in out
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["sentences"] == 4 and result["beam_size"] == 2
    assert result["workers"] == 1  # auto with threads=1
    assert result["status"] == "ok" and result["job"] == 0  # nmt.sweeps.jobs.run_job
    assert "search.beam_size=2" in result["overrides"]
    assert result["peak_mem_mb"] is not None and result["peak_mem_note"]
    assert len((tmp_path / "hyp.test.en").read_text().splitlines()) == 4


def test_train_cli_writes_run_dir(tiny_corpus, tmp_path):
    proc = run(
        [
            "-m",
            "nmt.train",
            f"data.root={tiny_corpus}",
            *TINY_TRAIN,
            f"train.cache_dir={tmp_path}/c",
            f"hydra.run.dir={tmp_path}/run",
        ]
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert (tmp_path / "run" / "checkpoints" / "best.pt").is_file()
    assert (tmp_path / "run" / "checkpoints" / "last.pt").is_file()
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 2


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full here")
def test_translate_onto_a_full_disk_is_one_line_error(tiny_checkpoint):
    with open("/dev/full", "wb") as full:
        proc = subprocess.run(
            [sys.executable, "-m", "nmt.translate", "--ckpt", str(tiny_checkpoint)],
            input=b"ein mann .\n" * 50,
            stdout=full,
            stderr=subprocess.PIPE,
            timeout=120,
            cwd=REPO,
        )
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    assert "No space left on device" in err and "Traceback" not in err


def test_translate_draws_one_attention_picture_per_non_empty_line(
    tiny_checkpoint, tmp_path
):
    from matplotlib.image import imread

    from nmt.figures.attention_map import figure_size
    from nmt.figures.canvas import DPI
    from nmt.inference.loading import load_translator
    from nmt.search import BeamConfig

    lines = [de for de, _ in PAIRS[:8]]
    lines[1:1] = [""]  # line 2 and line 10 are empty: no picture
    lines.append("")
    lines.append(PAIRS[8][0])  # line 11, in the second chunk of 8
    pictures = tmp_path / "attn" / "deep"  # made with its parents
    proc = run(
        [
            "-m",
            "nmt.translate",
            "--ckpt",
            str(tiny_checkpoint),
            "--batch-size",
            "1",  # chunks of 8 lines: numbers go on across chunks
            "--precision",
            "fp32",
            "--attention-dir",
            str(pictures),
        ],
        input_bytes="".join(line + "\n" for line in lines).encode(),
    )
    assert proc.returncode == 0, proc.stderr.decode()
    out = proc.stdout.decode().split("\n")
    assert len(out) - 1 == len(lines) and out[1] == "" and out[9] == ""
    numbers = [n for n, line in enumerate(lines, start=1) if line]
    assert sorted(p.name for p in pictures.iterdir()) == [
        f"{n:06d}.png" for n in numbers
    ]
    # line 1's picture: its source pieces across, its translation's pieces down
    translator, _ = load_translator(tiny_checkpoint, device=CPU, precision="fp32")
    best = translator.translate(lines[:1], BeamConfig(batch_size=1))[0][0]
    src = [translator.src_tok.decode([i]) for i in translator.encode(lines[0])]
    tgt = [translator.tgt_tok.decode([i]) for i in best.tokens]
    width, height = figure_size(src, tgt)
    image = imread(pictures / "000001.png")
    assert image.shape[:2] == (round(height * DPI), round(width * DPI))
    assert image.std() > 0.05
    file = tmp_path / "file"
    file.write_text("")
    proc = run(
        ["-m", "nmt.translate", "--ckpt", str(tiny_checkpoint)]
        + ["--attention-dir", str(file)],
        input_bytes=b"hallo\n",
    )
    err = proc.stderr.decode()
    assert proc.returncode == 2 and err.count("\n") == 1, err
    assert "--attention-dir" in err and "is a file" in err


def test_plot_draws_the_curves_of_real_runs_of_both_kinds(
    tiny_checkpoint, tiny_lm_checkpoint, tmp_path
):
    from matplotlib.image import imread

    from nmt.figures.canvas import DPI
    from nmt.figures.curves import SIZE

    runs = [str(tiny_checkpoint.parent.parent), str(tiny_lm_checkpoint.parent.parent)]
    out = tmp_path / "both.png"
    proc = run(["-m", "nmt", "plot", *runs, "--out", str(out)])
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode() == f"{out}\n"
    image = imread(out)
    assert image.shape[:2] == (round(SIZE[1] * DPI), round(SIZE[0] * DPI))
    assert image.std() > 0.05
    proc = run(["-m", "nmt.plot", str(tmp_path)])
    err = proc.stderr.decode()
    assert proc.returncode == 2 and err.count("\n") == 1, err
    assert err.startswith("nmt.plot: error: ") and "no metrics.jsonl" in err


def test_translate_evaluate_and_repl_decode_with_an_ensemble(
    tiny_checkpoint,
    tiny_checkpoint_b,
    tiny_checkpoint_other_vocab,
    tiny_corpus,
    tmp_path,
):
    from nmt.inference.loading import load_translator
    from nmt.search import BeamConfig

    a, b = tmp_path / "run" / "checkpoints" / "best.pt", tmp_path / "b" / "last.pt"
    for source, copy in ((tiny_checkpoint, a), (tiny_checkpoint_b, b)):
        copy.parent.mkdir(parents=True)
        shutil.copy(source, copy)
    lines = [de for de, _ in PAIRS[:3]]
    both = ["--ckpt", str(a), "--ckpt", str(b), "--threads", "1"]
    proc = run(["-m", "nmt.translate", *both], input_bytes="\n".join(lines).encode())
    assert proc.returncode == 0, proc.stderr.decode()
    ensemble, _ = load_translator([a, b], device=CPU, precision="auto")
    expected = ensemble.translate_best(lines, BeamConfig())
    assert proc.stdout.decode().splitlines() == expected
    mismatched = ["--ckpt", str(a), "--ckpt", str(tiny_checkpoint_other_vocab)]
    proc = run(["-m", "nmt.translate", *mismatched], input_bytes=b"x\n")
    err = proc.stderr.decode()
    assert proc.returncode == 2 and err.count("\n") == 1, err
    assert "different target vocabularies" in err
    proc = run(
        ["-m", "nmt.evaluate", *both[:4], f"data.root={tiny_corpus}", "threads=1"]
    )
    assert proc.returncode == 0, proc.stderr.decode()
    run_dir = tmp_path / "run" / "evaluate" / "best+last.test.beam5"  # beside a
    assert json.loads((run_dir / "result.json").read_text())["ckpt"] == [
        str(a),
        str(b),
    ]
    proc = run(
        ["-m", "nmt.repl", *both], input_bytes=f"{lines[0]}\n:nbest 2\n".encode()
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode().splitlines()[0] == expected[0]


def test_train_bad_subword_sampling_is_one_line_error(tmp_path):
    args = ["tokenizer.model_type=bpe", "tokenizer.sample_alpha=1"]
    proc = run(["-m", "nmt.train", *args, f"hydra.run.dir={tmp_path}/run"])
    err = proc.stderr.decode().strip()
    assert proc.returncode == 2 and len(err.splitlines()) == 1, err
    assert err.startswith("nmt.train: error: tokenizer.sample_alpha must be in [0, 1)")
