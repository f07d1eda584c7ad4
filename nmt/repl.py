"""`python -m nmt.repl --ckpt PATH` — translate or continue what you type.

Works with either kind of checkpoint (translation or char LM); --ckpt repeated
translates with an ensemble of translation models. On a terminal:
line editing and history (prompt_toolkit), an LM's sampled text shows as it is
generated, Ctrl-C stops the current answer with what it has (a second one
interrupts at once), Ctrl-D or :quit exits, :help lists the commands. Without
a terminal (pipes): exactly one line per input line and no prompt, so it can be
scripted: the :nbest answers as tab-separated fields, best first (1 unless
:nbest says otherwise); an LM's line breaks, tabs and backslashes escaped (\\n,
\\t, \\\\); a command's reply with its lines joined by " | "; notes on stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import signal
import sys
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

from nmt.utils.errors import quiet_broken_pipe, user_errors
from nmt.utils.runtime import add_runtime_flags, checkpoint_parser, runtime_from_flags
from nmt.utils.text import one_line

DEFAULT_HISTORY = Path("~/.cache/nmt/repl_history")


def build_parser() -> argparse.ArgumentParser:
    p = checkpoint_parser(
        "nmt.repl", __doc__, "translation or LM checkpoint", ensemble=True
    )
    p.epilog = (
        "Without a terminal (pipes): one line per input line; the :nbest answers "
        "as tab-separated fields, best first (1 unless :nbest says otherwise); an "
        "LM's line breaks, tabs and backslashes escaped (\\n, \\t, \\\\); a "
        "command's lines joined by ' | '; notes on stderr."
    )
    p.add_argument(
        "--history",
        default=str(DEFAULT_HISTORY),
        help="history file ('' = keep history in memory only)",
    )
    p.add_argument(
        "--max-seconds",
        type=float,
        default=None,
        help="time limit of each answer: it stops there with the best so far "
        "(default 20; :time changes it)",
    )
    add_runtime_flags(
        p, precisions="auto | fp32 | bf16 | int8 (translation models on a CPU)"
    )
    return p


def respond(session: Any, line: str) -> str:
    """session.handle(line), with any exception turned into an `error: ...` line."""
    try:
        return session.handle(line)
    except KeyboardInterrupt:
        raise
    except Exception as error:  # the REPL never dies on bad input
        return f"error: {one_line(error)}"


def run_pipe(session: Any, lines: Iterable[str], out: TextIO) -> None:
    """Answer each line with exactly one line (the session must be `plain`)."""
    for line in lines:
        out.write(respond(session, line.rstrip("\n")) + "\n")
        out.flush()
        if session.done:
            return


def _history(path: str) -> Any:
    from prompt_toolkit.history import FileHistory, InMemoryHistory

    if not path:
        return InMemoryHistory()
    file = Path(path).expanduser()
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        file.touch()
    except OSError as error:
        print(f"warning: history kept in memory ({error})", file=sys.stderr)
        return InMemoryHistory()
    return FileHistory(str(file))


class Echo:
    """The session's `stream`: writes the start of an answer to stdout while it is
    generated, and keeps it, so that the loop prints only the rest of the reply."""

    def __init__(self) -> None:
        self.shown = ""

    def __call__(self, text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()
        self.shown += text

    def rest(self, reply: str) -> str:
        """What of `reply` is still to print (on a new line if it does not go on
        from what was shown, as an error does not)."""
        if reply.startswith(self.shown):
            return reply[len(self.shown) :]
        return "\n" + reply


@contextlib.contextmanager
def ctrl_c_stops(session: Any) -> Iterator[None]:
    """Inside: a first Ctrl-C ends the answer with what it has (`session.stop`),
    a second one raises KeyboardInterrupt (a search step, or an LM reading a long
    prompt, may take a while). Only the main thread can set signal handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    presses = 0

    def on_ctrl_c(signum: int, frame: Any) -> None:
        nonlocal presses
        presses += 1
        if presses > 1:
            raise KeyboardInterrupt
        session.stop()

    previous = signal.signal(signal.SIGINT, on_ctrl_c)
    try:
        yield
    finally:  # (None: a handler not set from Python, which cannot be restored)
        restored = signal.default_int_handler if previous is None else previous
        signal.signal(signal.SIGINT, restored)


def run_terminal(session: Any, prompt: str, history: str, **io: Any) -> None:
    """The interactive loop; `io` (input=, output=) is for tests of prompt_toolkit."""
    from prompt_toolkit import PromptSession

    reader: PromptSession = PromptSession(history=_history(history), **io)
    while not session.done:
        try:
            line = reader.prompt(prompt)
        except KeyboardInterrupt:  # Ctrl-C at the prompt clears the line
            continue
        except EOFError:  # Ctrl-D
            break
        session.stream = echo = Echo()
        try:
            with ctrl_c_stops(session):
                reply = echo.rest(respond(session, line))
        except KeyboardInterrupt:  # a second Ctrl-C: what was shown stays
            reply = "\n[interrupted]" if echo.shown else "[interrupted]"
        if reply or echo.shown:
            print(reply, flush=True)


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    quiet_broken_pipe()
    with user_errors("nmt.repl"):
        from nmt.inference.generator import TextGenerator
        from nmt.inference.loading import load_any
        from nmt.inference.session import Session
        from nmt.inference.settings import check_seconds

        if args.max_seconds is not None:  # refused before loading the model
            check_seconds(args.max_seconds, "--max-seconds")
        engine, cfg = load_any(args.ckpt, **runtime_from_flags(args))
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    session = Session(engine, plain=not interactive, max_seconds=args.max_seconds)
    if isinstance(engine, TextGenerator):
        what, prompt = "character LM: type a prompt to continue", "lm> "
    else:
        src, tgt = cfg.data.src_lang, cfg.data.tgt_lang
        what, prompt = f"translation {src}->{tgt}: type a sentence", f"{src}> "
    print(f"nmt.repl: {what}; :help for commands", file=sys.stderr)
    try:
        if interactive:
            print(session.settings.describe(), file=sys.stderr)
            run_terminal(session, prompt, args.history)
        else:
            lines = io.TextIOWrapper(  # only "\n" ends a line: one answer each
                sys.stdin.buffer, encoding="utf-8", errors="replace", newline="\n"
            )
            run_pipe(session, lines, sys.stdout)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
