"""`python -m nmt.sweep_report DIR`: rebuild the summary of a Hydra multirun dir,
also one that is still running or was cut off (`nmt.sweeps.report`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from nmt.sweeps.report import KINDS, job_dirs, write_report


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: `python -m nmt.sweep_report DIR [--kind train|lm|evaluate] [--no-plot]`."""
    parser = argparse.ArgumentParser(
        prog="nmt.sweep_report",
        description="Rebuild summary.md/.csv (and summary.png or curves.png) of a "
        "Hydra multirun dir.",
    )
    parser.add_argument("sweep_dir", type=Path, help="the multirun (sweep) dir")
    parser.add_argument("--kind", choices=sorted(KINDS), help="default: detect")
    parser.add_argument(
        "--no-plot", action="store_true", help="skip summary.png / curves.png"
    )
    args = parser.parse_args(argv)
    if not args.sweep_dir.is_dir():
        parser.error(f"{args.sweep_dir} is not a directory")
    if not job_dirs(args.sweep_dir):
        parser.error(f"{args.sweep_dir} holds no Hydra job dirs")
    print(write_report(args.sweep_dir, kind=args.kind, plot=not args.no_plot), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
