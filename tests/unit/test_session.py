"""The REPL core without a terminal: commands, bad input, LM and translation answers."""

from __future__ import annotations

import importlib
import math
from types import SimpleNamespace

import pytest
import torch

from nmt.data.chars import CharTokenizer
from nmt.inference.generator import TextGenerator
from nmt.inference.session import HELP, LM_HELP, MAX_PROMPT_CHARS, Session
from nmt.inference.translator import Translator
from nmt.models.lm import CharLM
from nmt.models.seq2seq import Seq2Seq
from tests.conftest import PAIRS, TINY_TEXT, tiny_lm_config, tiny_model_config

CPU = torch.device("cpu")


@pytest.fixture
def generator() -> TextGenerator:
    tokenizer = CharTokenizer.build(TINY_TEXT)
    torch.manual_seed(0)
    model = CharLM(tiny_lm_config(), vocab_size=tokenizer.vocab_size).eval()
    return TextGenerator(model, tokenizer, device=CPU)


@pytest.fixture
def translator(tiny_spm) -> Translator:
    torch.manual_seed(0)
    vocab = tiny_spm.vocab_size
    model = Seq2Seq(tiny_model_config(), src_vocab=vocab, tgt_vocab=vocab).eval()
    return Translator(model, tiny_spm, tiny_spm, device=CPU)


def settings(reply: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in reply.split("\n")[-1].split(" "))


@pytest.mark.parametrize(
    "command, expected",
    [
        (":beam 3", {"mode": "beam", "beam": "3"}),
        (":sample", {"mode": "sample"}),
        (":temp 0.5", {"mode": "sample", "temp": "0.5"}),
        (":topk 40", {"mode": "sample", "topk": "40"}),
        (":topp 0.9", {"mode": "sample", "topp": "0.9"}),
        (":len 50", {"len": "50"}),
        (":nbest 2", {"nbest": "2"}),
        (":seed 7", {"seed": "7"}),
        (":seed random", {"seed": "random"}),
        (":BEAM   4 ", {"beam": "4"}),
        (":beam\t2", {"beam": "2"}),
    ],
)
def test_commands_change_settings_and_print_them(translator, command, expected):
    reply = Session(translator).handle(command)
    assert expected.items() <= settings(reply).items(), reply


@pytest.mark.parametrize(
    "command, message",
    [
        (":beam 0", ":beam needs a number between 1 and 100"),
        (":beam five", ":beam needs a number"),
        (":temp -1", ":temp needs a number >= 0"),
        (":temp nan", ":temp needs a number >= 0"),
        (":topp 0", ":topp needs a number between"),
        (":topp 1.5", ":topp needs a number between"),
        (":topk 2.5", ":topk needs a number"),
        (":nbest 6", ":nbest needs a number between 1 and 5"),
        (":len -3", ":len needs a number"),
        (":len 100000", ":len needs a number between 0 and 1000 (tokens; longer"),
        (":time 0", ":time needs a number between 0.1 and 3600"),
        (":time inf", ":time needs a number"),
        (":seed x", ":seed needs a number"),
        (":beam", ":beam needs a number"),
        (
            ":topk " + "9" * 400,
            ":topk needs a number",
        ),  # beyond float: no OverflowError
    ],
)
def test_bad_arguments_are_rejected_and_change_nothing(translator, command, message):
    session = Session(translator)
    before = session.settings.describe()
    reply = session.handle(command)
    assert reply.startswith("error: ") and message in reply, reply
    assert session.settings.describe() == before and not session.done


def test_unknown_command_prints_help_and_quit_ends(translator):
    session = Session(translator)
    reply = session.handle(":frobnicate 3")
    assert reply.startswith("unknown command ':frobnicate'") and HELP in reply
    assert HELP in session.handle(":help") and "mode=beam" in session.handle(":help")
    assert not session.done
    session.handle(":quit")
    assert session.done


def test_beam_lowers_nbest_and_nbest_is_free_when_sampling(translator):
    session = Session(translator)
    assert settings(session.handle(":beam 2"))["nbest"] == "2"
    session.handle(":sample")
    assert settings(session.handle(":nbest 8"))["nbest"] == "8"


def test_lm_continues_the_prompt_reproducibly_with_a_seed(generator):
    session = Session(generator)
    assert settings(session.handle(":len 40"))["mode"] == "sample"
    session.handle(":seed 3")
    first = session.handle("ROMEO:")
    assert first.startswith("ROMEO:") and len(first) <= len("ROMEO:") + 40
    assert session.handle("ROMEO:") == first
    session.handle(":seed 4")
    assert session.handle("ROMEO:") != first
    assert len(session.handle("")) <= 40  # an empty prompt starts a new line


def test_lm_beam_mode_lists_hypotheses_with_log_probs(generator):
    session = Session(generator)
    session.handle(":beam 3")
    session.handle(":nbest 2")
    session.handle(":len 10")
    reply = session.handle("JULIET:")
    assert reply.startswith("[1] log-prob ") and "\n[2] log-prob " in reply
    assert reply.count("JULIET:") == 2


def test_lm_help_and_replies_leave_out_translation_only_commands(generator):
    session = Session(generator)
    before = session.settings.describe()
    for command in (":attn", ":prefix ROMEO", ":ATTN x"):
        reply = session.handle(command)
        name = command.split()[0].lower()
        assert reply.startswith(f"error: {name} is not available for a language")
        assert "\n" not in reply
    assert session.settings.describe() == before
    reply = session.handle(":help")
    assert reply.startswith(LM_HELP) and ":attn" not in reply and ":prefix" not in reply
    assert ":len N         max characters" in reply and "0 = auto" not in reply
    assert ":attn" in HELP and ":prefix" in HELP and "max length (0 = auto)" in HELP
    assert session.handle(":nope").endswith(LM_HELP)


def test_unknown_characters_warn_but_do_not_crash(generator, capsys):
    session = Session(generator)
    session.handle(":len 5")
    reply = session.handle("Zürich ☃")
    assert reply.startswith("Zürich ☃")
    assert "unknown to the model" in capsys.readouterr().err


def test_translation_shows_the_nbest_list_and_attention(translator):
    session = Session(translator)
    assert session.handle(":attn").startswith("no attention yet")
    reply = session.handle(PAIRS[0][0])
    lines = reply.split("\n")
    assert [line[:4] for line in lines] == ["[1] ", "[2] ", "[3] "]
    scores = [float(line.split()[1]) for line in lines]
    assert scores == sorted(scores, reverse=True)
    table = session.handle(":attn").split("\n")
    source = translator.encode(PAIRS[0][0])
    assert len(table[0].split()) == len(source)  # header: one column per piece
    assert session.handle("   ") == ""


@pytest.mark.parametrize("prefix", ["", "a man"])
def test_a_sampled_translation_keeps_the_attention_of_its_first_sample(
    translator, prefix
):
    session = Session(translator)
    session.handle(PAIRS[0][0])
    beam_table = session.handle(":attn")
    for command in (":sample", ":nbest 3", ":seed 5", f":prefix {prefix}"):
        session.handle(command)
    first = session.handle(PAIRS[1][0]).split("\n")[0].split(None, 1)[1]
    header, *rows = session.handle(":attn").split("\n")
    assert header != beam_table.split("\n")[0]  # not the stale table
    assert len(header.split()) == len(translator.encode(PAIRS[1][0]))
    # one row per target piece of the first sample, its label the piece
    assert "".join(row.split()[0] for row in rows) == first.replace(" ", "")
    for row in rows:  # percentages of one attention distribution
        assert abs(sum(int(v) for v in row.split()[1:]) - 100) <= len(header.split())


def test_translation_warns_once_about_its_input(translator, capsys):
    session = Session(translator)
    session.handle("ein Hund \u6f22")  # a character the model does not know
    err = capsys.readouterr().err
    assert err.count("unknown to the model") == 1, err
    assert "warning: input has" in err and "line 1" not in err


def test_prefix_with_unknown_characters_warns(translator):
    reply = Session(translator).handle(":prefix \u6f22 a")
    assert "unknown to the target vocabulary" in reply and "\u6f22" in reply


def test_prefix_forces_the_start_of_every_hypothesis(translator, tiny_spm):
    session = Session(translator)
    assert session.handle(":prefix a man").endswith("prefix='a man'")
    for line in session.handle(PAIRS[1][0]).split("\n"):
        assert line.split(None, 2)[2].startswith("a man")
    session.handle(":sample")
    for line in session.handle(PAIRS[1][0]).split("\n"):
        assert line.split(None, 1)[1].startswith("a man")
    assert session.handle(":prefix").endswith("prefix=''")


def test_plain_mode_answers_on_one_line(generator, translator):
    lm = Session(generator, plain=True)
    lm.handle(":len 60")
    answer = lm.handle("ROMEO:\nBut")
    assert "\n" not in answer and answer.startswith("ROMEO:\\nBut")
    mt = Session(translator, plain=True)
    assert "\n" not in mt.handle(PAIRS[2][0]) and not mt.handle(PAIRS[2][0]).startswith(
        "["
    )


def test_plain_mode_joins_the_lines_of_a_command_reply(translator):
    session = Session(translator, plain=True)
    for command in (":help", ":nope"):
        reply = session.handle(command)
        assert "\n" not in reply and "\\n" not in reply  # no escaped breaks either
        assert " | :beam N  beam search of width N  :sample  sampling | " in reply
    assert session.handle(":help").endswith(" | " + session.settings.describe())
    session.handle(PAIRS[0][0])
    table = session.handle(":attn")
    assert "\n" not in table
    _, tgt, _ = session.last_attention
    assert table.count(" | ") == len(tgt)  # the header, then one line per target piece


@pytest.mark.parametrize("mode", [":beam 4", ":sample"])
def test_plain_mode_gives_the_nbest_as_tab_separated_fields(translator, mode):
    session = Session(translator, plain=True)
    for command in (mode, ":seed 3"):
        session.handle(command)
    best = session.handle(PAIRS[0][0])  # one answer unless :nbest says otherwise
    assert session.settings.nbest == 1 and "\t" not in best and best
    session.handle(":nbest 3")
    fields = session.handle(PAIRS[0][0]).split("\t")
    assert len(fields) == 3 and all(fields)
    if mode != ":sample":  # (three samples draw the first one differently)
        assert fields[0] == best
    assert Session(translator).settings.nbest == 3  # a terminal shows three


@pytest.mark.parametrize("mode", [":beam 3", ":sample"])
def test_plain_lm_nbest_fields_escape_tabs_and_breaks(generator, mode):
    session = Session(generator, plain=True)
    for command in (mode, ":nbest 2", ":len 10", ":seed 1"):
        session.handle(command)
    line = session.handle("JULIET:\tO\nRomeo")
    fields = line.split("\t")
    assert len(fields) == 2 and "\n" not in line
    assert all(f.startswith("JULIET:\\tO\\nRomeo") for f in fields)


def test_lm_len_is_bounded_in_characters(generator):
    session = Session(generator)
    assert settings(session.handle(":len 10000"))["len"] == "10000"
    reply = session.handle(":len 10001")
    assert reply.startswith("error: :len needs a number between 1 and 10000")
    assert "characters; longer answers take minutes" in reply


def test_time_limit_from_the_flag_or_the_command(translator):
    assert settings(Session(translator).handle(":help"))["time"] == "20s"
    session = Session(translator, max_seconds=2.5)
    assert settings(session.handle(":help"))["time"] == "2.5s"
    assert settings(session.handle(":time 0.5"))["time"] == "0.5s"
    with pytest.raises(ValueError, match="--max-seconds must be between 0.1"):
        Session(translator, max_seconds=0.0)


class Clock:
    """A fake `time.monotonic` for the session and the searches: every reading
    takes a second (the searches read it once per step)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = 0.0
        fake = SimpleNamespace(monotonic=self)
        for module in ("nmt.inference.session", "nmt.search.beam"):
            monkeypatch.setattr(f"{module}.time", fake)
        sample = importlib.import_module("nmt.search.sample")  # not the function
        monkeypatch.setattr(sample, "time", fake)

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


@pytest.mark.parametrize("mode", [":beam 2", ":sample"])
def test_an_answer_stops_at_the_time_limit_with_a_note(
    translator, generator, mode, monkeypatch, capsys
):
    def ask(engine, line: str, length: int, **options) -> str:
        session = Session(engine, **options)
        for command in (mode, ":seed 1", f":len {length}"):
            session.handle(command)
        return session.handle(line)

    short = ask(translator, PAIRS[0][0], 3)  # no time limit reached
    short_lm = ask(generator, "ROMEO:", 3, plain=True)
    Clock(monkeypatch)  # the session reads 1 s (deadline 5), then steps at 2, 3, 4
    *answers, note = ask(translator, PAIRS[0][0], 50, max_seconds=4).split("\n")
    assert note.startswith("(stopped at the 4 s time limit: the best found so far")
    assert "\n".join(answers) == short  # 3 steps, as with a length of 3
    assert ask(generator, "ROMEO:", 500, plain=True, max_seconds=4) == short_lm
    if mode == ":sample":  # (the LM's beam search has ended by itself)
        assert "note: (stopped at the 4 s time limit" in capsys.readouterr().err


@pytest.mark.parametrize("separator", ["\u2028", "\x85", "\x0b", "\x1c", "\u2029"])
def test_plain_answers_are_one_line_whatever_the_prompt(generator, separator):
    lm = Session(generator, plain=True)
    lm.handle(":len 20")
    answer = lm.handle(f"ROMEO:{separator}But")
    assert len(answer.splitlines()) == 1
    assert answer.startswith(f"ROMEO:\\u{ord(separator):04x}But")


def test_double_colon_is_text(generator):
    session = Session(generator)
    session.handle(":len 3")
    assert session.handle("::beam 3").startswith(":beam 3")


def test_lm_reads_only_the_end_of_a_huge_prompt(generator, capsys):
    """The answer to a 100,000-character prompt continues its last characters
    (as the same end alone would) and echoes the whole prompt."""
    session = Session(generator, plain=True)
    session.handle(":seed 1")
    session.handle(":len 20")
    tail = "ROMEO: " * (MAX_PROMPT_CHARS // 7 + 1)
    tail = tail[-MAX_PROMPT_CHARS:]
    alone = session.handle(tail)[len(tail) :]
    huge = "x" * 100_000 + tail
    reply = session.handle(huge)
    assert reply == huge + alone
    assert (
        "continues the prompt's last 2,000 of 102,000 characters"
        in capsys.readouterr().err
    )


def test_attn_with_a_file_saves_the_picture(translator, tmp_path):
    from matplotlib.image import imread

    from nmt.figures.attention_map import figure_size
    from nmt.figures.canvas import DPI

    session = Session(translator, plain=True)
    png = tmp_path / "attn.png"
    assert session.handle(f":attn {png}").startswith("no attention yet")
    assert not png.exists()
    session.handle(PAIRS[0][0])
    assert session.handle(f":attn {png}") == f"attention picture saved to {png}"
    src, tgt, _ = session.last_attention  # the pieces the table shows
    width, height = figure_size(src, tgt)
    image = imread(png)
    assert image.shape[:2] == (round(height * DPI), round(width * DPI))
    assert image.std() > 0.05
    assert session.handle(":attn").split()[0] == "ein"  # the table as before
    for bad, message in [
        (f":attn {tmp_path}/a.txt", "error: :attn writes a picture to FILE.png"),
        (f":attn {tmp_path}/no/dir/a.png", "error: cannot write"),
    ]:
        assert session.handle(bad).startswith(message)


def test_a_sampled_lm_answer_streams_as_the_start_of_its_reply(generator):
    def ask(session: Session, *commands: str) -> str:
        for command in (":nbest 2", ":len 30", ":seed 4", *commands):
            session.handle(command)
        return session.handle("ROMEO:")

    pieces: list[str] = []
    reply = ask(Session(generator, stream=pieces.append))
    shown = "".join(pieces)
    assert pieces[0] == "ROMEO:" and len(pieces) > 10  # the prompt, then characters
    assert reply.startswith(shown) and reply[len(shown) :].startswith("\n---")
    assert reply == ask(Session(generator))  # the same answer without streaming
    pieces.clear()
    ask(Session(generator, stream=pieces.append, plain=True))
    ask(Session(generator, stream=pieces.append), ":beam 2")
    assert pieces == []  # neither a pipe nor a beam search streams


def test_stop_ends_a_sampled_answer_with_the_text_so_far(generator):
    pieces: list[str] = []

    def show(text: str) -> None:
        pieces.append(text)
        if len(pieces) == 6:  # the prompt and 5 characters: Ctrl-C
            session.stop()

    session = Session(generator, stream=show)
    session.handle(":seed 1")
    reply = session.handle("ROMEO:")
    assert reply == "".join(pieces) + "\n[stopped]" and len(pieces) == 6
    assert not session.handle("ROMEO:").endswith("[stopped]")  # the next one runs
    session.stop()  # between answers: nothing to stop
    assert not session.handle("ROMEO:").endswith("[stopped]")


@pytest.mark.parametrize("plain", [False, True])
def test_stop_ends_a_beam_search_with_the_best_so_far(
    generator, monkeypatch, capsys, plain
):
    session = Session(generator, plain=plain)
    for command in (":beam 3", ":nbest 2", ":len 200"):
        session.handle(command)
    step, steps = generator.model.step, []

    def counted(tokens, state):
        steps.append(len(tokens))
        if len(steps) == 4:
            session.stop()  # as Ctrl-C would, during the fourth step
        logits, state = step(tokens, state)
        logits[:, generator.tokenizer.eos_id] = -math.inf  # no end of its own
        return logits, state

    monkeypatch.setattr(generator.model, "step", counted)
    reply = session.handle("JULIET:")
    if plain:  # the note goes to stderr: the answers stay on one line
        answers = reply.split("\t")
        assert "note: [stopped]" in capsys.readouterr().err
    else:
        *lines, note = reply.split("\n")
        assert note == "[stopped]" and lines[0].startswith("[1] log-prob")
        answers = [line for line in lines if line.startswith("JULIET:")]
    assert len(steps) == 4 and len(answers) == 2
    assert all(len(a) <= len("JULIET:") + 4 for a in answers)
