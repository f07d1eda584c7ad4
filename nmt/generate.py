"""`python -m nmt.generate --ckpt PATH --prompt "ROMEO:"`: continue text (char LM).

Prints prompt + continuation to stdout, samples separated by a line of dashes;
logs (seed, speed, warnings) go to stderr. Sampling by default, `--beam B` for
beam search (then `--num-samples` is the n-best size, at most B).
"""

from __future__ import annotations

import argparse
import sys
import time

from nmt.inference.generator import SAMPLING, generation_config
from nmt.search import SampleConfig
from nmt.utils.errors import quiet_broken_pipe, user_errors
from nmt.utils.runtime import add_runtime_flags, checkpoint_parser, runtime_from_flags

SEPARATOR = "-" * 40


def build_parser() -> argparse.ArgumentParser:
    sampling = SampleConfig()  # the flags default to sampling's own defaults
    p = checkpoint_parser("nmt.generate", __doc__, "LM checkpoint from nmt.train")
    p.add_argument(
        "--prompt", default="", help="text to continue (default: a line start)"
    )
    p.add_argument(
        "--max-chars", type=int, default=sampling.max_len, help="characters to add"
    )
    # sampling only (None: not given, which --beam needs): defaults in SAMPLING
    p.add_argument(
        "--temperature",
        type=float,
        help=f"0 = greedy (argmax); default {SAMPLING['temperature']}",
    )
    p.add_argument(
        "--top-k",
        type=int,
        help=f"sample among k best (0=off); default {SAMPLING['top_k']}",
    )
    p.add_argument(
        "--top-p",
        type=float,
        help=f"nucleus mass (1 = off); default {SAMPLING['top_p']}",
    )
    p.add_argument(
        "--beam", type=int, default=0, help="beam width B; 0 = sample (default)"
    )
    p.add_argument(
        "--num-samples",
        type=int,
        default=sampling.num_samples,
        help="continuations (n-best with --beam)",
    )
    p.add_argument("--seed", type=int, help="sampling seed (default: random, logged)")
    add_runtime_flags(p, precisions="auto | fp32 | bf16")
    return p


def flag(name: str) -> str:
    """A generation setting as this CLI spells it: num_samples -> --num-samples."""
    return "--" + name.replace("_", "-")


def continuations(generator, args: argparse.Namespace) -> list[str]:
    """The generated continuations (without the prompt) for parsed `args`."""
    cfg = generation_config(
        max_chars=args.max_chars,
        beam=args.beam,
        num_samples=args.num_samples,
        seed=args.seed,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        name=flag,
    )
    if isinstance(cfg, SampleConfig):
        print(f"seed {cfg.seed}", file=sys.stderr)  # once the settings are valid
    found = generator.generate(args.prompt, cfg, args.max_chars)
    for rank, c in enumerate(found, start=1):
        if c.score is not None:
            print(f"hypothesis {rank}: log-prob {c.score:.2f}", file=sys.stderr)
    return [c.text for c in found]


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    quiet_broken_pipe()
    with user_errors("nmt.generate"):
        from nmt.inference.loading import load_generator

        generator, _ = load_generator(args.ckpt, **runtime_from_flags(args))
        began = time.perf_counter()
        texts = continuations(generator, args)
        seconds = time.perf_counter() - began
        for i, text in enumerate(texts):
            if i:
                print(SEPARATOR)
            print(args.prompt + text)
        sys.stdout.flush()
        chars = sum(len(t) for t in texts)
        print(
            f"generated {chars} characters in {seconds:.1f} s "
            f"({chars / max(seconds, 1e-9):.0f} chars/s)",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()
