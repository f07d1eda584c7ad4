"""`python -m nmt.plot RUN [RUN ...] [--out FILE.png]`: the validation curves of
training runs in one PNG, from their RUN/metrics.jsonl (no TensorBoard needed).

Validation BLEU (char LM: bits per character) and loss against steps and against
wall-clock minutes, one line per run labelled by its dir name, so the runs of a
sweep can be compared at a glance. Prints the PNG's path.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from nmt.utils.errors import user_errors

DEFAULT_OUT = "curves.png"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="nmt.plot",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "runs",
        nargs="+",
        type=Path,
        metavar="RUN",
        help="a training run dir (hydra.run.dir of nmt.train) with metrics.jsonl",
    )
    p.add_argument(
        "--out",
        type=Path,
        help=f"the PNG to write (default: RUN/{DEFAULT_OUT} for one run, "
        f"./{DEFAULT_OUT} for several)",
    )
    return p


def labels(runs: Sequence[Path]) -> list[str]:
    """Each run's dir name, or the paths as given when two names are the same
    (jobs 0, 1, ... of two sweeps)."""
    names = [run.resolve().name for run in runs]
    return names if len(set(names)) == len(names) else [str(run) for run in runs]


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    with user_errors("nmt.plot"):
        one = len(args.runs) == 1
        out = args.out or (args.runs[0] / DEFAULT_OUT if one else Path(DEFAULT_OUT))
        if out.suffix.lower() != ".png":
            raise ValueError(f"--out must name a .png file, got {str(out)!r}")
        from nmt.figures.curves import plot_curves, read_run

        curves = [read_run(r, name) for r, name in zip(args.runs, labels(args.runs))]
        plot_curves(curves, out)
    print(out)


if __name__ == "__main__":
    main()
