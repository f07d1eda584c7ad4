"""The REPL loops around a Session: pipe mode and prompt_toolkit, without a terminal."""

from __future__ import annotations

import io

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
