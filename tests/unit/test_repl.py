"""The REPL loops around a Session: pipe mode and prompt_toolkit, without a terminal."""

from __future__ import annotations

import io
import signal

import pytest
import torch
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from nmt.data.chars import CharTokenizer
from nmt.inference.generator import TextGenerator
from nmt.inference.session import Session
from nmt.models.lm import CharLM
from nmt.repl import respond, run_pipe, run_terminal
from tests.conftest import TINY_TEXT, tiny_lm_config


@pytest.fixture
def session() -> Session:
    tokenizer = CharTokenizer.build(TINY_TEXT)
    torch.manual_seed(0)
    model = CharLM(tiny_lm_config(), vocab_size=tokenizer.vocab_size).eval()
    generator = TextGenerator(model, tokenizer, device=torch.device("cpu"))
    return Session(generator, plain=True)


class Exploding:
    done = False

    def handle(self, line: str) -> str:
        raise RuntimeError("boom\nsecond line")


def test_pipe_answers_one_line_per_line_and_stops_at_quit(session):
    out = io.StringIO()
    lines = [":len 30\n", ":seed 2\n", "ROMEO:\n", ":nope\n", "\n", ":quit\n", "x\n"]
    run_pipe(session, lines, out)
    answers = out.getvalue().split("\n")
    assert answers[-1] == "" and len(answers) - 1 == 6  # nothing after :quit
    assert answers[0].startswith("mode=sample") and "len=30" in answers[0]
    assert answers[2].startswith("ROMEO:")
    assert answers[3].startswith("unknown command ':nope'")
    assert answers[5] == "bye"


def test_errors_become_one_line_answers():
    assert respond(Exploding(), "x") == "error: RuntimeError: boom"


def test_terminal_loop_with_prompt_toolkit(session, capsys):
    session.plain = False
    with create_pipe_input() as keys:
        keys.send_text(":len 12\n:seed 5\nJULIET:\n\x04")  # \x04: Ctrl-D exits
        run_terminal(session, "lm> ", "", input=keys, output=DummyOutput())
    printed = capsys.readouterr().out.split("\n")
    assert printed[0].startswith("mode=sample") and "len=12" in printed[0]
    assert printed[2].startswith("JULIET:")
    assert not session.done  # Ctrl-D, not :quit


def test_terminal_loop_ends_on_quit_and_keeps_file_history(session, tmp_path):
    history = tmp_path / "deep" / "history"
    with create_pipe_input() as keys:
        keys.send_text(":beam 2\n:quit\n")
        run_terminal(session, "lm> ", str(history), input=keys, output=DummyOutput())
    assert session.done and ":beam 2" in history.read_text()


class Streaming:
    """A session whose answer streams "abc", then gets `presses` Ctrl-Cs (SIGINT)
    and returns `reply` (the whole answer, noted as stopped if it was)."""

    done = False

    def __init__(self, presses: int, reply: str = "abcdef") -> None:
        self.presses, self.reply, self.stops = presses, reply, 0
        self.stream = None

    def stop(self) -> None:
        self.stops += 1

    def handle(self, line: str) -> str:
        self.stream("abc")
        for _ in range(self.presses):
            signal.raise_signal(signal.SIGINT)
        return self.reply + ("\n[stopped]" if self.stops else "")


@pytest.mark.parametrize(
    "presses, reply, printed",
    [
        (0, "abcdef", "abcdef\n"),  # what was streamed is not printed twice
        (1, "abcdef", "abcdef\n[stopped]\n"),  # Ctrl-C: the answer so far
        (2, "abcdef", "abc\n[interrupted]\n"),  # a second one: at once
        (0, "error: boom", "abc\nerror: boom\n"),  # a reply that does not go on
    ],
)
def test_terminal_streams_and_ctrl_c_keeps_what_was_shown(
    presses, reply, printed, capsys
):
    session, before = Streaming(presses, reply), signal.getsignal(signal.SIGINT)
    with create_pipe_input() as keys:
        keys.send_text("x\n\x04")
        run_terminal(session, "> ", "", input=keys, output=DummyOutput())
    assert capsys.readouterr().out == printed
    assert session.stops == min(presses, 1)
    assert signal.getsignal(signal.SIGINT) is before  # restored after the answer


def test_terminal_lm_answer_streams_and_is_printed_once(session, capsys):
    session.plain = False
    with create_pipe_input() as keys:
        keys.send_text(":seed 5\n:nbest 2\nJULIET:\n\x04")
        run_terminal(session, "lm> ", "", input=keys, output=DummyOutput())
    out = capsys.readouterr().out
    answer = out.split("\n", 2)[2]  # after the two settings lines
    shown = session.stream.shown  # written while generated: the first sample
    assert shown.startswith("JULIET:") and answer.startswith(shown + "\n---")
    session.stream = None
    assert answer == session.handle("JULIET:") + "\n"
