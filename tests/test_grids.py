"""Tests of xmcgan_tf.grids: placement, enlargement and the text under each image."""

import numpy as np
import pytest

from xmcgan_tf import grids


def _cells(count, size=8):
    values = np.linspace(0.0, 1.0, count, dtype=np.float32)
    return np.broadcast_to(values[:, None, None, None], (count, size, size, 3)).copy()


def test_grid_without_text_places_each_image_row_major():
    images = _cells(5)
    grid = grids.image_grid(images, columns=3)
    pad = grids.PADDING
    assert grid.shape == (2 * (8 + pad) + pad, 3 * (8 + pad) + pad, 3)
    expected = grids.to_uint8(images)
    for index in range(5):
        row, column = divmod(index, 3)
        top, left = pad + row * (8 + pad), pad + column * (8 + pad)
        np.testing.assert_array_equal(grid[top:top + 8, left:left + 8], expected[index])
    assert (grid[:pad] == 255).all()  # white padding


def test_text_enlarges_small_images_and_is_drawn_under_each():
    images = _cells(2)
    plain = grids.image_grid(images, ["", ""], columns=2)
    captioned = grids.image_grid(images, ["a red circle", "a blue star above a square"],
                                 columns=2)
    scale = grids.MIN_CELL_PIXELS // 8
    pad = grids.PADDING
    cell = 8 * scale
    # The image is enlarged by nearest neighbour: every pixel of the cell has its value.
    np.testing.assert_array_equal(captioned[pad:pad + cell, pad:pad + cell],
                                  np.zeros([cell, cell, 3], np.uint8))
    # Text pixels (dark) appear below each image, and only there.
    below = captioned[pad + cell:, :]
    assert (below < 128).any()
    assert captioned.shape[0] > plain.shape[0]  # the second caption wraps to two lines
    assert (plain[pad + cell:] == 255).all()


def test_wrap_keeps_words_whole():
    assert grids.wrap("a small red circle above", 10) == ["a small", "red circle", "above"]
    assert grids.wrap("", 10) == [""]
    assert grids.wrap("extraordinarily long", 5) == ["extraordinarily", "long"]


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="N, H, W, 3"):
        grids.image_grid(np.zeros([2, 4, 4]))
    with pytest.raises(ValueError, match="2 texts for 3 images"):
        grids.image_grid(_cells(3), ["a", "b"])
