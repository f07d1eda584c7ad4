"""Stop training cleanly on SIGINT/SIGTERM, whatever it is doing at the time.

Work is either *deferred* or *interruptible*:
- a training step and a checkpoint write are deferred: the signal sets a flag that
  the loop checks when the step or write is complete (a second signal is answered
  with a message and also waits), so a step is never half applied and a
  checkpoint never half written;
- a validation, the test at the end and the set-up before training (data,
  SentencePiece) are interruptible: the signal raises `Interrupted` at once; the
  loop then saves the newest complete state (and notes that the validation is
  still due) before the run ends.

The run then exits with status 128 + the signal number (130 for SIGINT, 143 for
SIGTERM), as a process killed by the signal would, so shells and schedulers see
that it was stopped.
"""

from __future__ import annotations

import contextlib
import logging
import signal
from collections.abc import Iterator
from typing import Any

log = logging.getLogger("nmt.training.loop")

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):
    """A stop signal arrived during interruptible work (not an `Exception`, so that
    no `except Exception` on the way swallows it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class StopRequest:
    """SIGINT/SIGTERM handling for one training run (see the module docstring).

    `with stop:` installs the handlers (nested entries are no-ops); `deferred()`
    and `interruptible()` set how a signal is answered inside them. Outside any
    of them work is interruptible.
    """

    def __init__(self) -> None:
        self.signum: int | None = None  # the first stop signal received
        self._interruptible = True
        self._depth = 0
        self._old: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def exit_status(self) -> int:
        """128 + the signal number (0 when no stop was requested)."""
        return 0 if self.signum is None else 128 + self.signum

    @property
    def name(self) -> str:
        return "" if self.signum is None else signal.Signals(self.signum).name

    def __enter__(self) -> StopRequest:
        if self._depth == 0:
            self._old = {s: signal.getsignal(s) for s in SIGNALS}
            for s in SIGNALS:
                signal.signal(s, self._handle)
        self._depth += 1
        return self

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._depth == 0:
            for s, handler in self._old.items():
                signal.signal(s, handler)

    @contextlib.contextmanager
    def _mode(self, interruptible: bool) -> Iterator[None]:
        before, self._interruptible = self._interruptible, interruptible
        try:
            if interruptible and self.requested:  # a signal came before this work
                raise Interrupted(self.signum or signal.SIGINT)
            yield
        finally:
            self._interruptible = before

    def deferred(self) -> contextlib.AbstractContextManager[None]:
        """Work a signal must not cut short (a step, a checkpoint write)."""
        return self._mode(False)

    def interruptible(self) -> contextlib.AbstractContextManager[None]:
        """Work a signal abandons at once by raising `Interrupted`."""
        return self._mode(True)

    def _handle(self, signum: int, frame: Any) -> None:
        first = self.signum is None
        if first:
            self.signum = signum
        if self._interruptible:
            raise Interrupted(self.signum or signum)
        if first:
            log.warning(
                "%s: stopping after the current step; saving last.pt",
                signal.Signals(signum).name,
            )
        else:
            log.warning("already stopping: waiting for the current step or save")
