"""Progress bars on stderr, shown only on a terminal: pipes and logs stay clean."""

from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm


def terminal_bar(*, off: bool = False, **options: Any) -> tqdm:
    """A tqdm bar on stderr, disabled when `off` or unless stderr is a terminal
    (tqdm's `options`: total, initial, unit, desc, ...)."""
    return tqdm(
        file=sys.stderr,
        disable=off or not sys.stderr.isatty(),
        dynamic_ncols=True,
        **options,
    )
