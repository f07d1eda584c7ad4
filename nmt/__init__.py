"""nmt: recurrent neural machine translation and text generation.

`nmt.load(path)` gives a ready model (`nmt.api.load`); `import nmt` itself stays
cheap: torch and the rest are imported on first use of `nmt.load`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nmt.api import load

__all__ = ["load"]


def __getattr__(name: str) -> Any:
    if name == "load":
        from nmt.api import load

        return load
    raise AttributeError(f"module 'nmt' has no attribute {name!r}")
