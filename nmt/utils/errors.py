"""Turn the errors a user can fix into one line on stderr and exit status 2."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator

from omegaconf.errors import MissingMandatoryValue, ValidationError

from nmt.data.parallel import DataError
from nmt.training.checkpoint import CheckpointError
from nmt.utils.text import first_line

# errors whose message alone tells the user what to fix (no traceback needed)
USER_ERRORS: tuple[type[Exception], ...] = (
    CheckpointError,
    DataError,
    ValueError,
    OSError,  # a missing or unwritable file, a full disk: the message says which
    MissingMandatoryValue,  # a required config value not given (`ckpt=`)
    ValidationError,  # a config value of the wrong type
)


@contextlib.contextmanager
def user_errors(prog: str = "nmt") -> Iterator[None]:
    """Context: known user errors exit with `prog: error: <message>` and no traceback."""
    try:
        yield
    except USER_ERRORS as error:
        print(f"{prog}: error: {first_line(error) or repr(error)}", file=sys.stderr)
        _drop_unwritable_stdout()
        sys.exit(2)


def _drop_unwritable_stdout() -> None:
    """Flush stdout; if it cannot be written (a full disk), point it at /dev/null
    so that Python's own flush at exit does not fail again with a traceback."""
    try:
        sys.stdout.flush()
    except OSError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def quiet_broken_pipe() -> None:
    """Let a closed stdout pipe end the process silently (`nmt.translate | head`),
    as Unix filters do, not with a BrokenPipeError traceback. Main thread only; a
    no-op where SIGPIPE does not exist."""
    if (
        hasattr(signal, "SIGPIPE")
        and threading.current_thread() is threading.main_thread()
    ):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
