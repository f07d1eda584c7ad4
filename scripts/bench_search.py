"""Decoding speed and quality against beam width B and batch size, in one process.

    python scripts/bench_search.py --ckpt runs/x/checkpoints/best.pt \
        --data ../shared/data/multi30k [--split test_2016_flickr] [--threads 2]

Translates the split with each (B, batch) setting, prints sentences/s, BLEU and
chrF per row, then the two ratios the search is held to: beam 5 vs greedy at
batch 64 (>= 0.5) and beam 5 at batch 64 vs batch 1 (>= 10). The settings run in
turn, `--rounds` times, and each keeps its best time, so a slow spell of a shared
machine does not land on one setting only; with `--chunk N` the settings take turns
on every N lines, so drift within a round hits them alike. Run it alone.
"""

from __future__ import annotations

import argparse
import time

import torch

from nmt.data import load_parallel
from nmt.loading import load_translator
from nmt.metrics import corpus_scores
from nmt.runtime import pick_device, set_threads
from nmt.search import BeamConfig

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
    best: dict[tuple[int, int], float] = {}
    hyps: dict[tuple[int, int], list[str]] = {}
    size = args.chunk or len(src)
    chunks = [src[i : i + size] for i in range(0, len(src), size)]
    for round_ in range(args.rounds):
        took = dict.fromkeys(settings, 0.0)
        out: dict[tuple[int, int], list[str]] = {key: [] for key in settings}
        for lines in chunks:
            for beam, batch in settings:
                search = BeamConfig(
                    beam_size=beam,
                    batch_size=batch,
                    len_penalty=args.len_penalty if beam > 1 else 0.0,
                )
                began = time.perf_counter()
                out[beam, batch] += translator.translate_best(lines, search)
                took[beam, batch] += time.perf_counter() - began
        for key in settings:
            hyps[key] = out[key]
            best[key] = min(took[key], best.get(key, took[key]))
            print(
                f"round {round_ + 1}: B={key[0]:<2} batch={key[1]:<3} "
                f"{len(src) / took[key]:7.1f} sent/s",
                flush=True,
            )
        if all(key in took for key in QUICK):  # this round's own ratios
            greedy, beam5, single = (took[key] for key in QUICK)
            print(
                f"round {round_ + 1} ratios: {greedy / beam5:.2f}, {single / beam5:.1f}x"
            )
    rows = {
        key: (len(src) / took, corpus_scores(hyps[key], ref))
        for key, took in best.items()
    }
    print(
        f"\n{args.split}: {len(src)} sentences, torch {torch.__version__}, {threads} "
        f"threads, {translator.precision}, len_penalty {args.len_penalty} (B>1), "
        f"best of {args.rounds} rounds"
        + (f", settings interleaved per {size} lines" if args.chunk else "")
        + "\n"
    )
    print("| B | batch | sentences/s | BLEU | chrF |")
    print("| --- | --- | --- | --- | --- |")
    for (beam, batch), (speed, s) in rows.items():
        print(f"| {beam} | {batch} | {speed:.1f} | {s.bleu:.2f} | {s.chrf:.2f} |")
    greedy, beam5, beam5_single = rows[1, 64][0], rows[5, 64][0], rows[5, 1][0]
    print(f"\nbeam 5 / greedy at batch 64: {beam5 / greedy:.2f} (target >= 0.5)")
    print(f"beam 5 batch 64 / batch 1:   {beam5 / beam5_single:.1f}x (target >= 10)")
    print(f"BLEU signature: {rows[5, 64][1].bleu_signature}")


if __name__ == "__main__":
    main()
