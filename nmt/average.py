"""`python -m nmt.average --out avg.pt CKPT [CKPT ...]` or `--last K RUN`/`--best K RUN`:
average the weights of checkpoints of one model into one inference checkpoint.

Averaging the last few checkpoints of a run smooths the noise of the final steps
and usually gains a little BLEU. Training keeps the checkpoints it needs with
`train.keep_last=K` (RUN/checkpoints/step_N.pt, weights only). `--best K` takes
the K of them with the best validation score in RUN/metrics.jsonl.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from nmt.training.checkpoint import save_checkpoint
from nmt.training.progress import read_metrics
from nmt.training.release import (
    DTYPES,
    average_weights,
    file_mib,
    inference_payload,
    kept_checkpoints,
    load_compatible,
)
from nmt.utils.errors import user_errors


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="nmt.average",
        description="Average the weights of checkpoints of one model.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("inputs", nargs="+", type=Path, help="checkpoints, or one run dir")
    p.add_argument("--out", type=Path, required=True, help="the file to write")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--last", type=int, metavar="K", help="the run's last K")
    which.add_argument("--best", type=int, metavar="K", help="the run's best K")
    p.add_argument("--dtype", choices=list(DTYPES), default="fp32")
    return p


def choose(run_dir: Path, last: int | None, best: int | None) -> list[Path]:
    """The run's last or best K kept checkpoints (best by val BLEU, else val loss)."""
    kept = kept_checkpoints(run_dir)
    k = last if last is not None else best
    if k is None or k < 1:
        raise ValueError("a run dir needs --last K or --best K (K >= 1)")
    if len(kept) < k:
        raise ValueError(
            f"{run_dir} keeps {len(kept)} step checkpoints, fewer than {k} "
            "(train with train.keep_last=K)"
        )
    if last is not None:
        return list(kept.values())[-k:]
    scores = {r["step"]: r for r in read_metrics(run_dir) if r["step"] in kept}
    key = "val_bleu" if all("val_bleu" in r for r in scores.values()) else "val_loss"
    sign = 1 if key == "val_bleu" else -1
    ranked = sorted(scores, key=lambda step: sign * scores[step].get(key, 0.0))
    return [kept[step] for step in sorted(ranked[-k:])]


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    with user_errors("nmt.average"):
        paths = args.inputs
        if len(paths) == 1 and paths[0].is_dir():
            paths = choose(paths[0], args.last, args.best)
        elif args.last is not None or args.best is not None:
            raise ValueError("--last/--best take one run dir, not checkpoint files")
        if any(args.out.resolve() == p.resolve() for p in paths):
            raise ValueError(f"--out {args.out} is one of the inputs")
        payloads = load_compatible(paths)
        note = {"averaged": [str(p) for p in paths]}
        payload = inference_payload(
            payloads[0], model=average_weights(payloads), dtype=args.dtype, note=note
        )
        save_checkpoint(args.out, payload)
    names = ", ".join(p.name for p in paths)
    print(
        f"{args.out}: average of {len(paths)} ({names}), {file_mib(args.out):.1f} MiB",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
