"""Text kept on one line: an error's summary for messages, and model output for
line-based streams (one answer, one line). Not for reading text (`io.py`)."""

from __future__ import annotations

import re
from collections.abc import Sequence


def first_line(error: BaseException) -> str:
    """The first non-blank line of the error's message ("" when it has none)."""
    return next((line.strip() for line in str(error).splitlines() if line.strip()), "")


def one_line(error: BaseException) -> str:
    """`<Type>: <first line of the message>`, at most 300 characters."""
    line = first_line(error)
    text = f"{type(error).__name__}: {line}" if line else type(error).__name__
    return text[:300]


# what `str.splitlines` (and so many line-based readers) ends a line at, besides
# "\n" and "\r": vertical tab, form feed, file/group/record separators, NEL, and
# the Unicode line and paragraph separators
LINE_BREAKS = "\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
_SPACES = str.maketrans(dict.fromkeys("\n\r" + LINE_BREAKS, " "))
_ESCAPES = str.maketrans(
    {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
    | {c: f"\\u{ord(c):04x}" for c in LINE_BREAKS}
)


def flatten(text: str, *, escape: bool = False) -> str:
    """`text` on one line for any reader, `str.splitlines` included: line breaks
    become spaces (translations, which must stay parallel to their input), or with
    `escape` backslash escapes that a reader can undo (`\\n`, `\\r`, `\\\\`, and
    `\\u2028`-style for the other breaks: the REPL's pipe mode, where an LM writes
    newlines; tabs too, `\\t`, as they separate the answers of a line there)."""
    return text.translate(_ESCAPES if escape else _SPACES)


def join_fields(texts: Sequence[str]) -> str:
    """One line of tab-separated `texts` (each already flat); a tab in one of
    them becomes a space, so the fields stay apart (n-best answers in a pipe)."""
    return "\t".join(text.replace("\t", " ") for text in texts)


def join_lines(text: str, separator: str = " | ") -> str:
    """The non-blank lines of `text`, stripped, their column gaps cut to two
    spaces, joined by `separator`: a message that must fit on one line (the REPL's
    help in a pipe), still legible."""
    lines = (re.sub(" {3,}", "  ", line.strip()) for line in text.splitlines())
    return separator.join(line for line in lines if line)
