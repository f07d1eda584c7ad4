"""The attention heatmap: a real PNG sized by the pieces, any piece text, checks."""

from __future__ import annotations

import pytest
import torch
from matplotlib.image import imread

from nmt.figures.attention_map import figure_size, save_attention_map
from nmt.figures.canvas import DPI

SRC = ["ein", "mann", "fährt", "rad", "."]
TGT = ["a", "man", "rides", "a", "bike", "."]


def pixels(src, tgt) -> tuple[int, int]:
    width, height = figure_size(src, tgt)
    return round(height * DPI), round(width * DPI)


def weights(rows: int, cols: int) -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(rows, cols).mul(3).softmax(1)  # (T, S), rows sum to 1


def test_a_picture_of_the_expected_size_that_is_not_blank(tmp_path):
    save_attention_map(SRC, TGT, weights(6, 5), tmp_path / "a.png")
    image = imread(tmp_path / "a.png")
    assert image.shape[:2] == pixels(SRC, TGT)
    assert image.std() > 0.05


def test_the_picture_grows_with_the_pieces():
    (w, h), (w2, h2) = figure_size(SRC, TGT), figure_size(SRC * 4, TGT * 4)
    assert w2 > w and h2 > h
    assert figure_size(SRC, ["a" * 30])[0] > figure_size(SRC, ["a"])[0]


def test_any_piece_text_and_an_empty_translation_are_drawn(tmp_path):
    src = ["", "\n", "$x$", "$", "漢字", "\x00", "_a", "😀"]
    save_attention_map(src, ["\\", "$"], weights(2, 8).bfloat16(), tmp_path / "a.png")
    assert imread(tmp_path / "a.png").shape[:2] == pixels(src, ["\\", "$"])
    save_attention_map(SRC, [], torch.zeros(0, 5), tmp_path / "empty.png")
    assert imread(tmp_path / "empty.png").shape[:2] == pixels(SRC, [])


def test_a_shape_that_does_not_match_the_pieces_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"\(5, 6\) does not match 6 target x 5"):
        save_attention_map(SRC, TGT, weights(5, 6), tmp_path / "a.png")
    assert not (tmp_path / "a.png").exists()
