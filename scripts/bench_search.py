"""Decoding speed and quality against beam width B and batch size, in one process.

    python scripts/bench_search.py --ckpt runs/x/checkpoints/best.pt \
        --data ../shared/data/multi30k [--split test_2016_flickr] [--threads 2]

Translates the split with each (B, batch) setting, prints sentences/s, BLEU and
chrF per row, then the two ratios the search is held to: beam 5 vs greedy at
batch 64 (>= 0.5) and beam 5 at batch 64 vs batch 1 (>= 10). `--workers 1 0`
runs every setting with each number of decoding workers (0 = auto) and prints
the ratios for each. The settings run in turn, `--rounds` times, and each keeps
its best time, so a slow spell of a shared machine does not land on one setting
only; with `--chunk N` the settings take turns on every N lines, so drift within
a round hits them alike. Run it alone.
"""

from __future__ import annotations

import argparse
import time

import torch

from nmt import fast
from nmt.data.parallel import load_parallel
from nmt.inference.loading import load_translator
from nmt.inference.metrics import corpus_scores
from nmt.search import BeamConfig
from nmt.utils.runtime import pick_device, set_threads

SETTINGS = [(1, 64), (2, 64), (5, 64), (10, 64), (20, 64), (1, 1), (5, 1)]
QUICK = [(1, 64), (5, 64), (5, 1)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ckpt", required=True)
    p.add_argument("--data", required=True, help="directory with {split}.{lang} files")
    p.add_argument("--split", default="test_2016_flickr")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--precision", default="auto")
    p.add_argument("--len-penalty", type=float, default=1.0)
    p.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[0],
        help="decoding workers to compare (BeamConfig.workers; 0 = auto)",
    )
    p.add_argument("--rounds", type=int, default=2, help="timings per setting (best)")
    p.add_argument(
        "--quick", action="store_true", help="only B=1/64, B=5/64 and B=5/1 (ratios)"
    )
    p.add_argument(
        "--chunk",
        type=int,
        default=0,
        help="interleave: every setting translates each chunk of this many lines in "
        "turn, so a slow spell of the machine hits all settings alike (0 = off)",
    )
    args = p.parse_args()
    settings = QUICK if args.quick else SETTINGS
    threads = set_threads(args.threads)
    translator, cfg = load_translator(
        args.ckpt, device=pick_device("auto"), precision=args.precision
    )
    src, ref = load_parallel(
        args.data, args.split, (cfg.data.src_lang, cfg.data.tgt_lang)
    )
    translator.translate_best(src[:64], BeamConfig(beam_size=5))  # warm-up
    runs = [(b, n, w) for w in args.workers for b, n in settings]  # (B, batch, workers)
    best: dict[tuple[int, int, int], float] = {}
    hyps: dict[tuple[int, int, int], list[str]] = {}
    size = args.chunk or len(src)
    chunks = [src[i : i + size] for i in range(0, len(src), size)]
    for round_ in range(args.rounds):
        took = dict.fromkeys(runs, 0.0)
        out: dict[tuple[int, int, int], list[str]] = {key: [] for key in runs}
        for lines in chunks:
            for key in runs:
                beam, batch, workers = key
                search = BeamConfig(
                    beam_size=beam,
                    batch_size=batch,
                    workers=workers,
                    len_penalty=args.len_penalty if beam > 1 else 0.0,
                )
                began = time.perf_counter()
                out[key] += translator.translate_best(lines, search)
                took[key] += time.perf_counter() - began
        for key in runs:
            hyps[key] = out[key]
            best[key] = min(took[key], best.get(key, took[key]))
            print(
                f"round {round_ + 1}: B={key[0]:<2} batch={key[1]:<3} workers="
                f"{_workers(key[2])} {len(src) / took[key]:7.1f} sent/s",
                flush=True,
            )
        for workers in args.workers:  # this round's own ratios
            if all((b, n, workers) in took for b, n in QUICK):
                greedy, beam5, single = (took[b, n, workers] for b, n in QUICK)
                print(
                    f"round {round_ + 1} ratios (workers={_workers(workers)}): "
                    f"{greedy / beam5:.2f}, {single / beam5:.1f}x"
                )
    rows = {
        key: (len(src) / took, corpus_scores(hyps[key], ref))
        for key, took in best.items()
    }
    print(
        f"\n{args.split}: {len(src)} sentences, torch {torch.__version__}, {threads} "
        f"threads, {translator.precision}, len_penalty {args.len_penalty} (B>1), "
        f"best of {args.rounds} rounds, decoding with "
        + type(translator.stepper()).__name__
        + ("" if fast.enabled() else " (NMT_FAST=0)")
        + (f", settings interleaved per {size} lines" if args.chunk else "")
        + "\n"
    )
    print("| B | batch | workers | sentences/s | BLEU | chrF |")
    print("| --- | --- | --- | --- | --- | --- |")
    for (beam, batch, workers), (speed, s) in rows.items():
        print(
            f"| {beam} | {batch} | {_workers(workers)} | {speed:.1f} | {s.bleu:.2f} "
            f"| {s.chrf:.2f} |"
        )
    for workers in args.workers:
        greedy, beam5, single = (rows[b, n, workers][0] for b, n in QUICK)
        print(f"\nworkers={_workers(workers)}:")
        print(f"beam 5 / greedy at batch 64: {beam5 / greedy:.2f} (target >= 0.5)")
        print(f"beam 5 batch 64 / batch 1:   {beam5 / single:.1f}x (target >= 10)")
    print(f"BLEU signature: {next(iter(rows.values()))[1].bleu_signature}")


def _workers(workers: int) -> str:
    return str(workers) if workers > 0 else "auto"


if __name__ == "__main__":
    main()
