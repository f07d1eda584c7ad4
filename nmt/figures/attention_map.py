"""A PNG heatmap of one attention matrix: source pieces across the top, target
pieces down the side; the picture of the REPL's `:attn` table (attention_table.py).

Shapes: T target pieces, S source pieces. Sizes are in inches.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from torch import Tensor

from nmt.figures.canvas import new_figure, save_png
from nmt.inference.attention_table import piece_label

CELL = 0.3  # a weight is a CELL x CELL square
CHAR = 0.08  # width of a label character at FONT points
FONT = 8
BAR = (0.2, 0.15, 0.5)  # colour bar: gap before it, its width, its tick labels
MIN_BAR = 1.5  # the colour bar's least height (it is as tall as the grid)


@dataclass(frozen=True)
class Layout:
    """Where the parts go: margins around the grid of weights, in inches."""

    left: float  # the "target" title and the row labels
    top: float  # the "source" title and the column labels
    grid: tuple[float, float]  # (width, height): S x max(T, 1) cells
    bar: float  # the colour bar's height
    size: tuple[float, float]  # (width, height) of the whole figure


def layout(src_pieces: Sequence[str], tgt_pieces: Sequence[str]) -> Layout:
    """Room for each label (its characters at CHAR), a CELL per weight."""
    src_chars = max((len(piece_label(p)) for p in src_pieces), default=1)
    tgt_chars = max((len(piece_label(p)) for p in tgt_pieces), default=7)
    left, top, bottom = 0.45 + CHAR * tgt_chars, 0.45 + CHAR * src_chars, 0.15
    grid = (CELL * len(src_pieces), CELL * max(len(tgt_pieces), 1))
    bar = max(grid[1], MIN_BAR)
    width = left + grid[0] + sum(BAR) + 0.1
    return Layout(left, top, grid, bar, (width, top + bar + bottom))


def figure_size(
    src_pieces: Sequence[str], tgt_pieces: Sequence[str]
) -> tuple[float, float]:
    """(width, height) of the picture of these pieces."""
    return layout(src_pieces, tgt_pieces).size


def save_attention_map(
    src_pieces: Sequence[str],
    tgt_pieces: Sequence[str],
    attention: Tensor,
    path: Path,
) -> None:
    """Write the heatmap of `attention` to the PNG `path` (figure_size inches).

    Args:
        src_pieces: the S source pieces, as text (labels as in the `:attn` table).
        tgt_pieces: the T target pieces, as text; T = 0 (an empty translation)
            draws the source labels over one blank row.
        attention: (T, S) weights in [0, 1], row t for the step that produced
            tgt_pieces[t] (`Hypothesis.attention`: no EOS row).
        path: the PNG to write.
    """
    shape = (len(tgt_pieces), len(src_pieces))
    if tuple(attention.shape) != shape:
        raise ValueError(
            f"attention {tuple(attention.shape)} does not match "
            f"{shape[0]} target x {shape[1]} source pieces"
        )
    weights = attention.detach().float().cpu()  # (T, S)
    rows = [piece_label(p) for p in tgt_pieces]
    if not rows:  # NaN is drawn blank
        weights, rows = weights.new_full((1, shape[1]), float("nan")), ["(empty)"]
    at = layout(src_pieces, tgt_pieces)
    (width, height), (grid_w, grid_h) = at.size, at.grid
    fig = new_figure(width, height, constrained=False)  # placed here: drawn once
    grid_top = height - at.top
    ax = fig.add_axes(
        (at.left / width, (grid_top - grid_h) / height, grid_w / width, grid_h / height)
    )
    image = ax.imshow(
        weights.numpy(),
        cmap="Blues",
        vmin=0.0,
        vmax=1.0,
        interpolation="nearest",
        aspect="auto",  # the axes already have the grid's shape
    )
    cols = [piece_label(p) for p in src_pieces]
    # parse_math=False: a '$' in a piece is text, not the start of a formula
    ax.set_xticks(range(len(cols)), cols, rotation=90, fontsize=FONT, parse_math=False)
    ax.set_yticks(range(len(rows)), rows, fontsize=FONT, parse_math=False)
    ax.tick_params(top=True, labeltop=True, bottom=False, labelbottom=False)
    ax.set_xlabel("source")
    ax.xaxis.set_label_position("top")
    ax.set_ylabel("target")
    bar_left = at.left + grid_w + BAR[0]
    bar_ax = fig.add_axes(
        (
            bar_left / width,
            (grid_top - at.bar) / height,
            BAR[1] / width,
            at.bar / height,
        )
    )
    fig.colorbar(image, cax=bar_ax).ax.tick_params(labelsize=FONT)
    save_png(fig, path)
