"""`python -m nmt.evaluate ckpt=PATH split=test [data.root=DIR] [search.beam_size=B]` (Hydra).

Translates a split, prints sacreBLEU BLEU/chrF with signatures, sentences/s and the
peak memory of decoding, writes `result.json` (and the translations) in the run dir.
Multirun-able: `python -m nmt.evaluate -m ckpt=PATH +sweep=beam` compares beam widths.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig

from nmt.config import EvaluateConfig, config_path, register_configs
from nmt.data.parallel import load_parallel
from nmt.inference.loading import load_translator
from nmt.inference.metrics import corpus_scores
from nmt.sweeps.jobs import objective, run_job, write_result
from nmt.utils.memory import PeakMemory
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
    with PeakMemory(device) as memory:  # this job's decoding only, not the process
        began = time.perf_counter()
        hyps = translator.translate_best(src, cfg.search)
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


register_configs()


@hydra.main(version_base="1.3", config_path=config_path(), config_name="evaluate")
def main(dcfg: DictConfig) -> float:
    # result.json gets the overrides; a failing multirun job becomes a "failed" row
    result = run_job(run_evaluate, dcfg, prog="nmt.evaluate")
    return objective(result, "bleu")


if __name__ == "__main__":
    main()
