"""`python -m nmt.translate --ckpt PATH` — translate stdin (or --input) line by line.

Exactly one output line per input line, in order (K lines with --nbest K).
--ckpt given several times decodes with an ensemble of the models.
Logs and warnings go to stderr; translations to stdout (or --output).
--attention-dir DIR also draws the best translation's attention of each line.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO, TextIO

from nmt.search import BeamConfig, Hypothesis
from nmt.utils.errors import quiet_broken_pipe, user_errors
from nmt.utils.io import decode_utf8
from nmt.utils.progress import terminal_bar
from nmt.utils.runtime import add_runtime_flags, checkpoint_parser, runtime_from_flags
from nmt.utils.text import flatten

CHUNK_BATCHES = 8  # lines are read and answered in chunks of batch_size * this


def build_parser() -> argparse.ArgumentParser:
    search = BeamConfig()  # the flags default to the search's own defaults
    p = checkpoint_parser(
        "nmt.translate",
        __doc__,
        "checkpoint (best.pt/last.pt) from nmt.train",
        ensemble=True,
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
    p.add_argument(
        "--attention-dir",
        metavar="DIR",
        help="also draw the best translation's attention of input line N into "
        "DIR/N.png (made if missing), N counted from 1 and zero-padded to 6 "
        "digits (000001.png); an empty or blank line gets no picture, an empty "
        "translation one blank row. Drawing costs time (~0.1 s a picture)",
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
    attention_dir: Path | None = None,
    total: int | None = None,
) -> int:
    """Translate `source` into `sink`, and draw each line's attention into
    `attention_dir` when given; returns the number of input lines. A terminal
    shows the lines done (of `total`, when known), unless the translations
    themselves go to it."""
    count = 0
    shown = sink.isatty()  # the translations are the progress
    with terminal_bar(off=shown, total=total, unit=" lines", desc="translating") as bar:
        for lines in read_chunks(source, cfg.batch_size * CHUNK_BATCHES):
            found = translator.translate(
                lines,
                cfg,
                offset=count,
                attention=attention_dir is not None,
                progress=bar.update,
            )
            write_chunk(translator, found, sink, count, nbest=nbest, scores=scores)
            if attention_dir is not None:
                draw_attention(
                    translator, lines, found, cfg, attention_dir, first=count
                )
            count += len(lines)
    return count


def count_lines(path: str) -> int:
    """Lines of a file as `read_chunks` splits it (for the progress bar's total)."""
    with open(path, "rb") as f:
        ends, last = 0, b"\n"  # an empty file has no line
        while block := f.read(1 << 20):
            ends, last = ends + block.count(b"\n"), block[-1:]
    return ends + (last != b"\n")


def write_chunk(
    translator,
    found: Sequence[list[Hypothesis]],
    sink: TextIO,
    count: int,
    *,
    nbest: int,
    scores: bool,
) -> None:
    """Write a chunk's translations: one line per input line (or its n-best
    lines); `count` lines came before it."""
    for i, hyps in enumerate(found):
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


def draw_attention(
    translator,
    lines: Sequence[str],
    found: Sequence[list[Hypothesis]],
    cfg: BeamConfig,
    directory: Path,
    *,
    first: int,
) -> None:
    """DIR/N.png for each line that has an attention (N = first + index + 1): the
    source pieces translated (cut at cfg.max_src_len) against the best
    hypothesis' tokens (no EOS row), labelled like the REPL's `:attn` table."""
    from nmt.figures.attention_map import save_attention_map

    for i, (line, hyps) in enumerate(zip(lines, found, strict=True)):
        best = hyps[0]
        if best.attention is None:  # nothing to translate: no picture
            continue
        ids = translator.encode(line, warn=False, max_src_len=cfg.max_src_len)
        src, tgt = translator.labels(ids, best.tokens)
        save_attention_map(
            src, tgt, best.attention, directory / f"{first + i + 1:06d}.png"
        )


def check_args(args: argparse.Namespace) -> None:
    """ValueError for what `BeamConfig` does not check: --nbest (0 = one line per
    input), --output naming the input file, --attention-dir naming a file."""
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
    if args.attention_dir and os.path.isfile(args.attention_dir):
        raise ValueError(f"--attention-dir {args.attention_dir} is a file")


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
        attention_dir = Path(args.attention_dir) if args.attention_dir else None
        if attention_dir is not None:
            if all(model.cfg.attention == "none" for model in translator.models):
                raise ValueError("--attention-dir needs a model with attention")
            attention_dir.mkdir(parents=True, exist_ok=True)
        source = open(args.input, "rb") if args.input else sys.stdin.buffer
        sink = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout
        try:
            count = translate_stream(
                translator,
                source,
                sink,
                cfg,
                nbest=args.nbest,
                scores=args.scores,
                attention_dir=attention_dir,
                total=count_lines(args.input) if args.input else None,
            )
        finally:
            if args.input:
                source.close()
            if args.output:
                sink.close()
        print(f"translated {count} lines", file=sys.stderr)


if __name__ == "__main__":
    main()
