"""Stop training cleanly on SIGINT/SIGTERM: the loop finishes its step and saves."""

from __future__ import annotations

import logging
import signal
from typing import Any

log = logging.getLogger("nmt.training.loop")


class StopRequest:
    """SIGINT/SIGTERM set a flag the loop checks between steps (a second ^C kills)."""

    def __init__(self) -> None:
        self.requested = False

    def __enter__(self) -> StopRequest:
        self._old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        for s in self._old:
            signal.signal(s, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        log.warning("stop requested: finishing the current step and saving last.pt")

    def __exit__(self, *exc: object) -> None:
        for s, handler in self._old.items():
            signal.signal(s, handler)
