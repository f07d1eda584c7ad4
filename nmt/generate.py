"""`python -m nmt.generate --ckpt PATH --prompt "ROMEO:"`: continue text (char LM).

Prints prompt + continuation to stdout, samples separated by a line of dashes;
logs (seed, speed, warnings) go to stderr. Sampling by default, `--beam B` for
beam search (then `--num-samples` is the n-best size, at most B).
"""

from __future__ import annotations

import argparse
import secrets
import sys
import time

from nmt.search import BeamConfig, SampleConfig
from nmt.utils.errors import quiet_broken_pipe, user_errors
from nmt.utils.runtime import add_runtime_flags, checkpoint_parser, runtime_from_flags

SEPARATOR = "-" * 40
# the sampling flags' defaults (temperature: the CLI's own, not SampleConfig's 1.0)
SAMPLING = {
    "temperature": 0.8,
    "top_k": SampleConfig.top_k,
    "top_p": SampleConfig.top_p,
}


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
    p.add_argument("--temperature", type=float, help="0 = greedy (argmax); default 0.8")
    p.add_argument(
        "--top-k",
        type=int,
        help=f"sample among k best (0=off); default {sampling.top_k}",
    )
    p.add_argument(
        "--top-p", type=float, help=f"nucleus mass (1 = off); default {sampling.top_p}"
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


def continuations(generator, args: argparse.Namespace) -> list[str]:
    """The generated continuations (without the prompt) for parsed `args`."""
    if args.beam < 0:
        raise ValueError(f"--beam must be >= 0 (0 = sample), got {args.beam}")
    given = [name for name in SAMPLING if getattr(args, name) is not None]
    if args.beam > 0 and given:
        flags = ", ".join("--" + name.replace("_", "-") for name in given)
        raise ValueError(f"{flags} set(s) sampling, which --beam does not use")
    for name, default in SAMPLING.items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    if args.max_chars < 0 or args.top_k < 0:
        raise ValueError("--max-chars and --top-k must be >= 0")
    if args.beam > 0:
        if not 1 <= args.num_samples <= args.beam:
            raise ValueError(
                f"--num-samples {args.num_samples} must be between 1 and --beam "
                f"{args.beam} in beam search"
            )
        cfg = BeamConfig(beam_size=args.beam, nbest=args.num_samples)
        found = generator.beam(args.prompt, args.max_chars, cfg)
        for rank, c in enumerate(found, start=1):
            print(f"hypothesis {rank}: log-prob {c.score:.2f}", file=sys.stderr)
        return [c.text for c in found]
    seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
    cfg = SampleConfig(
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        max_len=args.max_chars,
        num_samples=args.num_samples,
        seed=seed,
    )
    print(f"seed {seed}", file=sys.stderr)  # once the settings are valid
    return [c.text for c in generator.sample(args.prompt, cfg)]


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
