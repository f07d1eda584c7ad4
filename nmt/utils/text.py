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


def flatten(text: str, *, escape: bool = False) -> str:
    """`text` on one line: line breaks become spaces (translations, which must stay
    parallel to their input), or with `escape` backslash escapes that a reader can
    undo (`\\n`, `\\r`, `\\\\`: the REPL's pipe mode, where an LM writes newlines)."""
    if escape:
        return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
    return text.replace("\n", " ").replace("\r", " ")
