"""`python -m nmt.export CKPT --out model.pt [--dtype bf16]`: a model for release.

Writes the inference part of a checkpoint (kind, config, weights, tokenizers)
without optimizer, progress or RNG states, which every inference command loads;
`train.resume` refuses it. `--dtype bf16` halves the file again; loading casts
the weights back to fp32.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from nmt.training.checkpoint import load_checkpoint, save_checkpoint
from nmt.training.release import DTYPES, file_mib, inference_payload
from nmt.utils.errors import user_errors


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="nmt.export",
        description="Write the inference part of a checkpoint (a model for release).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("ckpt", type=Path, help="a checkpoint (best.pt, last.pt, ...)")
    p.add_argument("--out", type=Path, required=True, help="the file to write")
    p.add_argument("--dtype", choices=list(DTYPES), default="fp32")
    return p


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    with user_errors("nmt.export"):
        if args.out.resolve() == args.ckpt.resolve():
            raise ValueError(f"--out {args.out} is the checkpoint itself")
        payload = load_checkpoint(args.ckpt)
        save_checkpoint(args.out, inference_payload(payload, dtype=args.dtype))
    print(
        f"{args.out}: {file_mib(args.out):.1f} MiB ({args.dtype}; "
        f"{args.ckpt}: {file_mib(args.ckpt):.1f} MiB)",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
