"""One-line text: error summaries and output lines."""

from __future__ import annotations

import pytest

from nmt.utils.text import first_line, flatten, join_fields, join_lines, one_line


def test_first_line_skips_blank_lines():
    assert first_line(ValueError("\n  \n  bad value  \n detail")) == "bad value"
    assert first_line(RuntimeError()) == ""


def test_one_line_keeps_type_and_first_line():
    assert one_line(ValueError("bad value\n  detail")) == "ValueError: bad value"
    assert one_line(RuntimeError()) == "RuntimeError"
    assert len(one_line(ValueError("x" * 1000))) == 300


@pytest.mark.parametrize(
    ("text", "spaces", "escaped"),
    [
        ("plain", "plain", "plain"),
        ("a\nb\r\nc", "a b  c", "a\\nb\\r\\nc"),
        ("back\\slash\n", "back\\slash ", "back\\\\slash\\n"),
        ("a\tb", "a\tb", "a\\tb"),  # a tab is a field separator in the REPL's pipes
        ("line\u2028sep\x85", "line sep ", "line\\u2028sep\\u0085"),
        (
            "\x0b\x0c\x1c\x1d\x1e\u2029",
            "      ",
            "\\u000b\\u000c\\u001c\\u001d\\u001e\\u2029",
        ),
    ],
)
def test_flatten_with_spaces_or_escapes(text, spaces, escaped):
    assert flatten(text) == spaces
    assert flatten(text, escape=True) == escaped
    assert len(flatten(text).splitlines()) <= 1
    assert len(flatten(text, escape=True).splitlines()) <= 1


def test_escapes_can_be_undone():
    text = "a\\u2028 b\u2028c\nd\x85\te"
    assert flatten(text, escape=True).encode().decode("unicode_escape") == text


def test_join_fields_keeps_one_field_per_text():
    line = join_fields(["a b", "c\td", ""])
    assert line == "a b\tc d\t" and line.split("\t") == ["a b", "c d", ""]


def test_join_lines_puts_a_message_on_one_legible_line():
    text = "head:\n  :a N      first\n\n   \n  x\u2028y  \n"
    assert join_lines(text) == "head: | :a N  first | x | y"
    assert join_lines("a\nb", "; ") == "a; b" and join_lines("") == ""
