"""Where beam search time goes at batch 64 and batch 1, and how far batching can go.

    python scripts/bench_split.py --ckpt runs/x/checkpoints/best.pt \
        --data ../shared/data/multi30k [--beam 5] [--single 250] [--rounds 2]

Translates the split at batch 64 and its first --single lines at batch 1. It uses
one thread and one worker, so each operation's time is its own. It times every
matrix product around its call: linear maps (plain, packed, int8) and the
encoder's RNN. It also counts the search's steps. Each run is split into:

- matrix products;
- per-step cost: steps x the batch-1 run's non-matrix time per step. This is what
  a step costs whatever its rows do: Python, operator dispatch, tiny tensors;
- the rest: per-row work outside the matrix products (attention, cell, top-k,
  gathers).

It also prints the matrix products' time per row-step (a row of one step; the
encoder's share included): a beam of 5 at batch 1 already hands them 5 rows.

It prints batch 64 / batch 1 as measured, and what it would be if batch 64 had
no "rest" or only its matrix products (batch 1 as measured). The same ratios are
then scaled to the default set-up (--threads, decoding workers auto). Each
setting's speed-up there is measured, but the bounds are estimates: they assume
the lower bounds speed up as the whole run does. Run it alone.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from nmt.data.parallel import load_parallel
from nmt.fast.linear import Int8Linear, PackedLinear
from nmt.inference.loading import load_translator
from nmt.inference.translator import Translator
from nmt.search import BeamConfig
from nmt.utils.runtime import pick_device, set_threads

# callables that run matrix products: (owner, attribute)
PRODUCTS = [
    (PackedLinear, "__call__"),
    (Int8Linear, "__call__"),
    (nn.Linear, "forward"),
    (nn.GRU, "forward"),
    (nn.LSTM, "forward"),
    (nn.RNN, "forward"),
    (nn.functional, "linear"),
]


@dataclass
class Run:
    """One timed decode: sentences, wall seconds, seconds in matrix products, steps
    and row-steps (the rows of all steps)."""

    sentences: int
    seconds: float
    products: float
    steps: int
    rows: int

    @property
    def speed(self) -> float:
        return self.sentences / self.seconds


@contextlib.contextmanager
def timed_products(clock: dict[str, float]) -> Iterator[None]:
    """Add the time spent in `PRODUCTS` to clock["products"] (outermost calls only:
    nn.Linear.forward calling F.linear counts once). One thread only."""
    saved = [(owner, name, getattr(owner, name)) for owner, name in PRODUCTS]
    depth = [0]

    def timed(f):
        @functools.wraps(f)
        def call(*args, **kwargs):
            if depth[0]:
                return f(*args, **kwargs)
            depth[0] += 1
            began = time.perf_counter()
            try:
                return f(*args, **kwargs)
            finally:
                clock["products"] += time.perf_counter() - began
                depth[0] -= 1

        return call

    for owner, name, f in saved:
        setattr(owner, name, timed(f))
    try:
        yield
    finally:
        for owner, name, f in saved:
            setattr(owner, name, f)


def decode(translator: Translator, lines: list[str], search: BeamConfig) -> Run:
    """Translate `lines`, timing the whole and its matrix products, counting steps
    and rows."""
    clock = {"products": 0.0}
    steps, rows = [0], [0]
    stepper = translator.stepper()  # the one the translation below uses
    step = stepper.step

    def counted(tokens, state):
        steps[0] += 1
        rows[0] += tokens.numel()
        return step(tokens, state)

    stepper.step = counted  # the instance attribute shadows the method
    try:
        with timed_products(clock):
            began = time.perf_counter()
            translator.translate_best(lines, search)
            seconds = time.perf_counter() - began
    finally:
        del stepper.step
    return Run(len(lines), seconds, clock["products"], steps[0], rows[0])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ckpt", required=True)
    p.add_argument("--data", required=True, help="directory with {split}.{lang} files")
    p.add_argument("--split", default="test_2016_flickr")
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--single", type=int, default=250, help="lines decoded at batch 1")
    p.add_argument("--threads", type=int, default=2, help="for the default set-up")
    p.add_argument("--precision", default="auto")
    p.add_argument("--rounds", type=int, default=2, help="timings per setting (best)")
    args = p.parse_args()
    if min(args.beam, args.batch, args.single, args.rounds) < 1:
        p.error("--beam, --batch, --single and --rounds must be >= 1")
    translator, cfg = load_translator(
        args.ckpt, device=pick_device("auto"), precision=args.precision
    )
    src, _ = load_parallel(
        args.data, args.split, (cfg.data.src_lang, cfg.data.tgt_lang)
    )
    settings = {"batch": (src, args.batch), "single": (src[: args.single], 1)}
    split: dict[str, Run] = {}
    whole: dict[str, float] = {}
    for round_ in range(args.rounds):
        for name, (lines, batch) in settings.items():
            set_threads(1)
            search = BeamConfig(beam_size=args.beam, batch_size=batch, workers=1)
            if round_ == 0 and name == "batch":
                translator.translate_best(src[:batch], search)  # warm-up
            run = decode(translator, lines, search)
            if name not in split or run.seconds < split[name].seconds:
                split[name] = run
            set_threads(args.threads)
            search = BeamConfig(beam_size=args.beam, batch_size=batch)  # workers auto
            began = time.perf_counter()
            translator.translate_best(lines, search)
            speed = len(lines) / (time.perf_counter() - began)
            whole[name] = max(speed, whole.get(name, 0.0))
            print(
                f"round {round_ + 1}: batch {batch:<3} 1 thread {run.speed:6.1f} "
                f"sent/s, default {speed:6.1f} sent/s",
                flush=True,
            )
    report(args, translator, split, whole)


def report(
    args: argparse.Namespace,
    translator: Translator,
    split: dict[str, Run],
    whole: dict[str, float],
) -> None:
    """Print the split table and the ratio bounds."""
    batch, single = split["batch"], split["single"]
    per_step = (single.seconds - single.products) / single.steps  # s per batch-1 step
    print(
        f"\n{args.split}, beam {args.beam}, torch {torch.__version__}, "
        f"{translator.precision}, best of {args.rounds} rounds; split on 1 thread, "
        "1 worker:\n"
    )
    print(
        "| batch | sentences | sentences/s | steps | row-steps | matrix products "
        "| per row-step | per-step cost | rest (per row) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for (name, run), size in zip(split.items(), (args.batch, 1), strict=True):
        fixed = run.steps * per_step if name == "batch" else run.seconds - run.products
        rest = run.seconds - run.products - fixed
        parts = (run.products, fixed, rest)
        products, fixed, rest = (f"{s:.2f} s ({s / run.seconds:.0%})" for s in parts)
        print(
            f"| {size} | {run.sentences} | {run.speed:.1f} | {run.steps} | {run.rows} "
            f"| {products} | {1e6 * run.products / run.rows:.1f} us | {fixed} | {rest} |"
        )
    rest = batch.seconds - batch.products - batch.steps * per_step
    bounds = {
        "as measured": batch.speed,
        "no per-row rest at batch 64": batch.sentences / (batch.seconds - rest),
        "matrix products only at batch 64": batch.sentences / batch.products,
    }
    # how much faster each setting runs in the default set-up than on 1 thread
    scale = (whole["batch"] / batch.speed) / (whole["single"] / single.speed)
    print(
        f"\nDefault set-up ({args.threads} threads, workers auto): batch "
        f"{args.batch} {whole['batch']:.1f} sent/s ({whole['batch'] / batch.speed:.2f}x "
        f"its 1-thread speed), batch 1 {whole['single']:.1f} sent/s "
        f"({whole['single'] / single.speed:.2f}x).\n"
    )
    print(f"| batch {args.batch} / batch 1 | 1 thread | default set-up (scaled) |")
    print("| --- | --- | --- |")
    for name, speed in bounds.items():
        ratio = speed / single.speed
        print(f"| {name} | {ratio:.2f}x | {ratio * scale:.2f}x |")


if __name__ == "__main__":
    main()
