"""Turn the errors a user can fix into one line on stderr and exit status 2."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

from nmt.checkpoint import CheckpointError
from nmt.data import DataError


@contextlib.contextmanager
def user_errors(prog: str = "nmt") -> Iterator[None]:
    """Context: known user errors exit with `prog: error: <message>` and no traceback."""
    try:
        yield
    except (
        CheckpointError,
        DataError,
        ValueError,
        FileNotFoundError,
        IsADirectoryError,
        PermissionError,
    ) as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        sys.exit(2)
