"""One way to make and save a figure: matplotlib's object API on the Agg canvas.

No pyplot, so no global figure state and no GUI backend; matplotlib is imported
only when a figure is drawn, so the CLIs that may draw one start no slower.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

DPI = 100  # a saved PNG is (round(height * DPI), round(width * DPI)) pixels


def new_figure(width: float, height: float, *, constrained: bool = True) -> Any:
    """A `matplotlib.figure.Figure` of width x height inches. `constrained`
    layout places labels and legends inside the figure, its size unchanged (at
    the cost of a second drawing); without it the caller places the axes."""
    from matplotlib.figure import Figure

    layout = "constrained" if constrained else None
    return Figure(figsize=(width, height), dpi=DPI, layout=layout)


def save_png(fig: Any, path: Path) -> None:
    """Write `fig` to `path` as a PNG at DPI. Characters the font lacks (CJK,
    emoji in subword pieces) are drawn as boxes without a warning per glyph."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .* missing from")
        fig.savefig(path, dpi=DPI, format="png")
