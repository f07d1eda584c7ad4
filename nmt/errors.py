"""Turn the errors a user can fix into one line on stderr and exit status 2."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

from nmt.checkpoint import CheckpointError
from nmt.data import DataError

# errors whose message alone tells the user what to fix (no traceback needed)
USER_ERRORS: tuple[type[Exception], ...] = (
    CheckpointError,
    DataError,
    ValueError,
    FileNotFoundError,
    IsADirectoryError,
    PermissionError,
)


def one_line(error: BaseException) -> str:
    """`<Type>: <first line of the message>`, at most 300 characters."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
    return text[:300]


@contextlib.contextmanager
def user_errors(prog: str = "nmt") -> Iterator[None]:
    """Context: known user errors exit with `prog: error: <message>` and no traceback."""
    try:
        yield
    except USER_ERRORS as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        sys.exit(2)
