"""`python -m nmt.evaluate ckpt=PATH split=test [data.root=DIR] [search.beam_size=B]` (Hydra).

Translates a split, prints sacreBLEU BLEU/chrF with signatures, sentences/s and the
peak memory of decoding, writes `result.json` (and the translations) in the run dir.
`ckpt=[A,B]` (or --ckpt A --ckpt B) evaluates an ensemble of the models.
Multirun-able: `python -m nmt.evaluate -m ckpt=PATH +sweep=beam` compares beam widths.
"""

from __future__ import annotations

import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from nmt.config import EvaluateConfig, config_path, register_configs
from nmt.data.parallel import load_parallel
from nmt.inference.loading import load_translator
from nmt.inference.metrics import corpus_scores
from nmt.sweeps.jobs import objective, run_job, write_result
from nmt.utils.memory import PeakMemory
from nmt.utils.progress import terminal_bar
from nmt.utils.runtime import pick_device, set_threads

log = logging.getLogger("nmt.evaluate")


def checkpoints(ckpt: Any) -> list[str]:
    """The paths of `EvaluateConfig.ckpt`: one path, or a list (an ensemble)."""
    paths = [ckpt] if isinstance(ckpt, str) else list(ckpt)
    if not paths or not all(isinstance(p, str) and p for p in paths):
        raise ValueError(f"ckpt must be a path or a list of paths, got {ckpt!r}")
    return paths


def check_output(out: Path, root: str, ckpt: str | list[str]) -> None:
    """Refuse an output path that would overwrite a checkpoint (`ckpt`: one or a
    list) or a file of the data directory (a reference overwritten by its
    hypotheses scores 100 BLEU)."""
    if not out.exists():
        return
    data_dir = Path(root)
    paths = checkpoints(ckpt)
    if out.is_dir() or any(Path(c).exists() and out.samefile(c) for c in paths):
        raise ValueError(f"output={out} is a directory or the checkpoint")
    if data_dir.is_dir() and out.resolve().parent == data_dir.resolve():
        raise ValueError(
            f"output={out} is a file of the data directory {root}; it would be "
            "overwritten: choose another path"
        )


def run_evaluate(cfg: EvaluateConfig, run_dir: Path) -> dict:
    """Translate `cfg.split`, score it and write result.json; returns the result."""
    threads = set_threads(cfg.threads)
    device = pick_device(cfg.device)
    ckpts = checkpoints(cfg.ckpt)
    translator, train_cfg = load_translator(
        ckpts, device=device, precision=cfg.precision
    )
    data = train_cfg.data
    root = cfg.data.root or data.root
    split = {"test": data.test_split, "val": data.val_split}.get(cfg.split, cfg.split)
    out = Path(cfg.output) if cfg.output else run_dir / f"hyp.{split}.{data.tgt_lang}"
    check_output(out, root, ckpts)
    src, ref = load_parallel(root, split, (data.src_lang, data.tgt_lang))
    log.info(
        "translating %s (%d lines, %s -> %s) with %s, beam %d",
        split,
        len(src),
        data.src_lang,
        data.tgt_lang,
        " + ".join(ckpts),
        cfg.search.beam_size,
    )
    bar = terminal_bar(total=len(src), unit=" lines", desc=f"translating {split}")
    with bar, PeakMemory(device) as memory:  # this job's decoding, not the process
        began = time.perf_counter()
        hyps = translator.translate_best(src, cfg.search, progress=bar.update)
        seconds = time.perf_counter() - began
    scores = corpus_scores(hyps, ref)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(h + "\n" for h in hyps), encoding="utf-8")
    result = {
        "ckpt": ckpts[0] if len(ckpts) == 1 else ckpts,
        "split": split,
        "sentences": len(src),
        "beam_size": cfg.search.beam_size,
        "batch_size": cfg.search.batch_size,
        "len_penalty": cfg.search.len_penalty,
        "bleu": round(scores.bleu, 2),
        "chrf": round(scores.chrf, 2),
        "bleu_signature": scores.bleu_signature,
        "chrf_signature": scores.chrf_signature,
        "sentences_per_s": round(len(src) / seconds, 2),
        "seconds": round(seconds, 2),
        "peak_mem_mb": memory.peak_mb,
        "peak_mem_note": memory.note,
        "threads": threads,
        "workers": translator.workers_used,  # search.workers, 0 (auto) resolved
        "device": str(device),
        "precision": translator.precision,
        "hypotheses": str(out),
    }
    write_result(run_dir, result)
    log.info(
        "BLEU %.2f, chrF %.2f, %.1f sentences/s; result.json and %s in %s",
        scores.bleu,
        scores.chrf,
        len(src) / seconds,
        out.name,
        run_dir,
    )
    print(scores.bleu_verbose)
    print(f"BLEU = {scores.bleu:.2f}  signature: {scores.bleu_signature}")
    print(f"chrF2 = {scores.chrf:.2f}  signature: {scores.chrf_signature}")
    print(
        f"{len(src)} sentences in {seconds:.1f} s = {len(src) / seconds:.1f} sentences/s "
        f"(beam {cfg.search.beam_size}, batch {cfg.search.batch_size}, {threads} threads, "
        f"{translator.workers_used} workers)"
    )
    print(f"peak memory {memory.peak_mb} MiB ({memory.note})")
    sys.stdout.flush()
    return result


def results_dir(ckpt: Any, split: str, beam: str) -> str:
    """The run dir of an evaluation not given `hydra.run.dir`: beside the model, as
    RUN/evaluate/<ckpt stem>.<split>.beam<B> for RUN/checkpoints/<stem>.pt, else
    <ckpt dir>/evaluate/<stem>.<split>.beam<B>. An ensemble (a list of paths)
    goes beside its first model, named by all the stems: <stem>+<stem2>.<split>...
    Without a ckpt (a one-line error follows) a dir in the temp dir, so the
    current one stays clean."""
    paths = [ckpt] if isinstance(ckpt, str) else [str(p) for p in ckpt or ()]
    if not paths or not paths[0]:
        return str(Path(tempfile.gettempdir()) / "nmt-evaluate-without-ckpt")
    path = Path(paths[0])
    base = path.parent.parent if path.parent.name == "checkpoints" else path.parent
    stems = "+".join(Path(p).stem for p in paths)
    return str(base / "evaluate" / f"{stems}.{split}.beam{beam}")


def hydra_args(argv: list[str]) -> list[str]:
    """`--ckpt PATH` and `--ckpt=PATH` (as nmt.translate spells it) as Hydra's
    `ckpt=PATH`, several of them as `ckpt=[PATH,PATH2]` (an ensemble) where the
    first was; everything else as it is."""
    if argv[-1:] == ["--ckpt"]:
        print("nmt.evaluate: error: --ckpt needs a checkpoint path", file=sys.stderr)
        sys.exit(2)
    args: list[str] = []
    paths: list[str] = []
    at, i = 0, 0  # where the first --ckpt was
    while i < len(argv):
        arg = argv[i]
        if arg == "--ckpt" and i + 1 < len(argv):
            path, i = argv[i + 1], i + 2
        elif arg.startswith("--ckpt="):
            path, i = arg[len("--ckpt=") :], i + 1
        else:
            args.append(arg)
            i += 1
            continue
        at = at if paths else len(args)
        paths.append(path)
    if paths:
        value = paths[0] if len(paths) == 1 else "[" + ",".join(paths) + "]"
        args.insert(at, f"ckpt={value}")
    return args


register_configs()
OmegaConf.register_new_resolver("nmt_results_dir", results_dir, replace=True)


@hydra.main(version_base="1.3", config_path=config_path(), config_name="evaluate")
def main(dcfg: DictConfig) -> float:
    # result.json gets the overrides; a failing multirun job becomes a "failed" row
    result = run_job(run_evaluate, dcfg, prog="nmt.evaluate")
    return objective(result, "bleu")


if __name__ == "__main__":
    sys.argv = hydra_args(sys.argv)
    main()
