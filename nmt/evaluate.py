"""`python -m nmt.evaluate ckpt=PATH split=test [data.root=DIR] [search.beam_size=B]` (Hydra).

Translates a split, prints sacreBLEU BLEU/chrF with signatures, sentences/s and the
peak memory of decoding, writes `result.json` (and the translations) in the run dir.
Multirun-able: `python -m nmt.evaluate -m ckpt=PATH +sweep=beam` compares beam widths.
"""

from __future__ import annotations

import logging
import sys
import tempfile
import time
from pathlib import Path

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


def check_output(out: Path, root: str, ckpt: str) -> None:
    """Refuse an output path that would overwrite the checkpoint or a file of the
    data directory (a reference overwritten by its hypotheses scores 100 BLEU)."""
    if not out.exists():
        return
    data_dir = Path(root)
    if out.is_dir() or (Path(ckpt).exists() and out.samefile(ckpt)):
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
    translator, train_cfg = load_translator(
        cfg.ckpt, device=device, precision=cfg.precision
    )
    data = train_cfg.data
    root = cfg.data.root or data.root
    split = {"test": data.test_split, "val": data.val_split}.get(cfg.split, cfg.split)
    out = Path(cfg.output) if cfg.output else run_dir / f"hyp.{split}.{data.tgt_lang}"
    check_output(out, root, cfg.ckpt)
    src, ref = load_parallel(root, split, (data.src_lang, data.tgt_lang))
    log.info(
        "translating %s (%d lines, %s -> %s) with %s, beam %d",
        split,
        len(src),
        data.src_lang,
        data.tgt_lang,
        cfg.ckpt,
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
        "ckpt": str(cfg.ckpt),
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


def results_dir(ckpt: str, split: str, beam: str) -> str:
    """The run dir of an evaluation not given `hydra.run.dir`: beside the model, as
    RUN/evaluate/<ckpt stem>.<split>.beam<B> for RUN/checkpoints/<stem>.pt, else
    <ckpt dir>/evaluate/<stem>.<split>.beam<B>. Without a ckpt (a one-line error
    follows) a dir in the temp dir, so the current one stays clean."""
    if not ckpt:
        return str(Path(tempfile.gettempdir()) / "nmt-evaluate-without-ckpt")
    path = Path(ckpt)
    base = path.parent.parent if path.parent.name == "checkpoints" else path.parent
    return str(base / "evaluate" / f"{path.stem}.{split}.beam{beam}")


def hydra_args(argv: list[str]) -> list[str]:
    """`--ckpt PATH` and `--ckpt=PATH` (as nmt.translate spells it) as Hydra's
    `ckpt=PATH`; everything else as it is."""
    if argv[-1:] == ["--ckpt"]:
        print("nmt.evaluate: error: --ckpt needs a checkpoint path", file=sys.stderr)
        sys.exit(2)
    args, i = [], 0
    while i < len(argv):
        if argv[i] == "--ckpt" and i + 1 < len(argv):
            args.append(f"ckpt={argv[i + 1]}")
            i += 2
            continue
        arg = argv[i]
        args.append(
            "ckpt=" + arg[len("--ckpt=") :] if arg.startswith("--ckpt=") else arg
        )
        i += 1
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
