"""Plain-text attention matrix (target pieces x source pieces) for the REPL's `:attn`.

Shapes: T target pieces, S source pieces.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor


def piece_label(piece: str) -> str:
    """A piece as a label: line breaks escaped, an empty piece shown as a dot."""
    return piece.replace("\n", "\\n") or "·"


def attention_table(
    src_pieces: Sequence[str], tgt_pieces: Sequence[str], attention: Tensor
) -> str:
    """Weights in percent, one row per target piece, one column per source piece.

    Args:
        src_pieces: the S source pieces, as text.
        tgt_pieces: the T target pieces, as text.
        attention: (T, S) weights, row t for the step that produced tgt_pieces[t]
            (`Hypothesis.attention`).

    Returns:
        A table whose rows end at the last column; the row label column is as wide
        as the longest target piece.
    """
    if tuple(attention.shape) != (len(tgt_pieces), len(src_pieces)):
        raise ValueError(
            f"attention {tuple(attention.shape)} does not match "
            f"{len(tgt_pieces)} target x {len(src_pieces)} source pieces"
        )
    cols = [piece_label(p) for p in src_pieces]
    rows = [piece_label(p) for p in tgt_pieces]
    widths = [max(3, len(c)) for c in cols]
    left = max((len(r) for r in rows), default=0)
    lines = [" " * left + "".join(f" {c:>{w}}" for c, w in zip(cols, widths))]
    percent = (attention.float() * 100).round().int().tolist()  # (T, S)
    for label, values in zip(rows, percent):
        cells = "".join(f" {v:>{w}}" for v, w in zip(values, widths))
        lines.append(f"{label:<{left}}{cells}")
    return "\n".join(lines)
