"""`python -m nmt.translate --ckpt PATH` — translate stdin (or --input) line by line.

Exactly one output line per input line, in order (K lines with --nbest K).
Logs and warnings go to stderr; translations to stdout (or --output).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Iterator
from typing import BinaryIO, TextIO

from nmt.search import BeamConfig
from nmt.utils.errors import quiet_broken_pipe, user_errors
from nmt.utils.io import decode_utf8
from nmt.utils.runtime import add_runtime_flags, checkpoint_parser, runtime_from_flags
from nmt.utils.text import flatten

CHUNK_BATCHES = 8  # lines are read and answered in chunks of batch_size * this


def build_parser() -> argparse.ArgumentParser:
    search = BeamConfig()  # the flags default to the search's own defaults
    p = checkpoint_parser(
        "nmt.translate", __doc__, "checkpoint (best.pt/last.pt) from nmt.train"
    )
    p.add_argument("--input", help="input file (default: stdin)")
    p.add_argument("--output", help="output file (default: stdout)")
    p.add_argument(
        "--batch-size", type=int, default=search.batch_size, help="sentences per batch"
    )
    p.add_argument(
        "--workers",
        type=int,
        default=search.workers,
        help="batches decoded at once, sharing the threads (0 = auto: 2 on a CPU)",
    )
    p.add_argument(
        "--beam", type=int, default=search.beam_size, help="beam width B (1 = greedy)"
    )
    p.add_argument(
        "--nbest",
        type=int,
        default=0,
        help="print K hypotheses per line in Moses n-best format 'id ||| hyp ||| "
        "logprob= L ||| score' (score: L over the length penalty) "
        "(fewer when fewer distinct ones exist: an empty line has one, empty)",
    )
    p.add_argument(
        "--len-penalty",
        type=float,
        default=search.len_penalty,
        help="GNMT alpha (0 = off)",
    )
    p.add_argument(
        "--max-len-a",
        type=float,
        default=search.max_len_a,
        help="max length = a*|src| + b",
    )
    p.add_argument("--max-len-b", type=int, default=search.max_len_b)
    p.add_argument(
        "--max-len",
        type=int,
        default=search.max_len,
        help="at most this many target tokens, whatever a and b say "
        "(0 = the model's data.max_len)",
    )
    p.add_argument(
        "--max-src-len",
        type=int,
        default=search.max_src_len,
        help="translate at most this many source tokens per line; longer lines are "
        "cut, with a warning (0 = the model's data.max_len)",
    )
    p.add_argument(
        "--scores", action="store_true", help="append '\\t<score>' to each line"
    )
    add_runtime_flags(
        p, precisions="auto | fp32 | bf16 | int8 (int8 output and decoder maps, CPU)"
    )
    return p


def read_chunks(stream: BinaryIO, chunk: int) -> Iterator[list[str]]:
    """Chunks of decoded lines; invalid UTF-8 is replaced (with a warning), only
    '\\n' separates lines, a trailing '\\r' is dropped."""
    lines: list[str] = []
    for number, raw in enumerate(stream, start=1):
        line, valid = decode_utf8(raw.rstrip(b"\n").rstrip(b"\r"))
        if not valid:
            print(
                f"warning: line {number} is not valid UTF-8; bad bytes replaced",
                file=sys.stderr,
            )
        lines.append(line)
        if len(lines) == chunk:
            yield lines
            lines = []
    if lines:
        yield lines


def translate_stream(
    translator,
    source: BinaryIO,
    sink: TextIO,
    cfg: BeamConfig,
    *,
    nbest: int,
    scores: bool,
) -> int:
    """Translate `source` into `sink`; returns the number of input lines."""
    count = 0
    for lines in read_chunks(source, cfg.batch_size * CHUNK_BATCHES):
        for i, hyps in enumerate(translator.translate(lines, cfg, offset=count)):
            if nbest:
                for hyp in hyps[:nbest]:
                    text = flatten(translator.detokenize(hyp))
                    # Moses n-best: id ||| hypothesis ||| features ||| score
                    sink.write(
                        f"{count + i} ||| {text} ||| logprob= {hyp.log_prob:.4f} "
                        f"||| {hyp.score:.4f}\n"
                    )
            else:
                text = flatten(translator.detokenize(hyps[0]))
                sink.write(f"{text}\t{hyps[0].score:.4f}\n" if scores else text + "\n")
        sink.flush()
        count += len(lines)
    return count


def check_args(args: argparse.Namespace) -> None:
    """ValueError for what `BeamConfig` does not check: --nbest (0 = one line per
    input) and --output naming the input file."""
    if not 0 <= args.nbest <= args.beam:
        raise ValueError(
            f"--nbest must be between 0 (one line per input) and --beam "
            f"({args.beam}), got {args.nbest}"
        )
    if (
        args.input
        and args.output
        and os.path.exists(args.output)
        and os.path.exists(args.input)
        and os.path.samefile(args.input, args.output)
    ):
        raise ValueError(
            f"--output {args.output} is the input file; it would be erased"
        )


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    quiet_broken_pipe()
    with user_errors("nmt.translate"):
        cfg = BeamConfig(  # checks --beam, --batch-size, --len-penalty first
            beam_size=args.beam,
            nbest=1,
            len_penalty=args.len_penalty,
            max_len_a=args.max_len_a,
            max_len_b=args.max_len_b,
            max_len=args.max_len,
            max_src_len=args.max_src_len,
            batch_size=args.batch_size,
            workers=args.workers,
        )
        check_args(args)
        cfg = dataclasses.replace(cfg, nbest=max(1, args.nbest))
        from nmt.inference.loading import load_translator

        translator, _ = load_translator(args.ckpt, **runtime_from_flags(args))
        source = open(args.input, "rb") if args.input else sys.stdin.buffer
        sink = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout
        try:
            count = translate_stream(
                translator, source, sink, cfg, nbest=args.nbest, scores=args.scores
            )
        finally:
            if args.input:
                source.close()
            if args.output:
                sink.close()
        print(f"translated {count} lines", file=sys.stderr)


if __name__ == "__main__":
    main()
