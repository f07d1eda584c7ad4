"""Text kept on one line: an error's summary for messages, and model output for
line-based streams (one answer, one line). Not for reading text (`io.py`)."""

from __future__ import annotations


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
    {"\\": "\\\\", "\n": "\\n", "\r": "\\r"}
    | {c: f"\\u{ord(c):04x}" for c in LINE_BREAKS}
)


def flatten(text: str, *, escape: bool = False) -> str:
    """`text` on one line for any reader, `str.splitlines` included: line breaks
    become spaces (translations, which must stay parallel to their input), or with
    `escape` backslash escapes that a reader can undo (`\\n`, `\\r`, `\\\\`, and
    `\\u2028`-style for the other breaks: the REPL's pipe mode, where an LM writes
    newlines)."""
    return text.translate(_ESCAPES if escape else _SPACES)
