"""Pixel-coordinate channels (CoordConv, Liu et al. 2018, arXiv:1807.03247).

Convolutions are translation-equivariant and the released networks pool or attend without any
notion of place, so where something is survives only through zero padding. Appending each
position's (row, column) as two channels lets the layers that follow see it. Used by the
discriminator's input and the generator's word-attention regions when switched on by gin.

Legend: B batch, H×W spatial size, C channels.
"""

from __future__ import annotations

import tensorflow as tf
from keras import ops


def coordinate_grid(batch: int | tf.Tensor, height: int, width: int,
                    dtype: str = "float32") -> tf.Tensor:
    """[B, H, W, 2]: channel 0 the row, channel 1 the column of each cell centre, from −1 (top,
    left) to 1 (bottom, right)."""
    rows = (ops.arange(height, dtype="float32") + 0.5) / height * 2.0 - 1.0  # [H]
    cols = (ops.arange(width, dtype="float32") + 0.5) / width * 2.0 - 1.0  # [W]
    grid = ops.stack(ops.meshgrid(rows, cols, indexing="ij"), axis=-1)[None]  # [1, H, W, 2]
    return ops.cast(ops.tile(grid, (batch, 1, 1, 1)), dtype)


def with_coordinates(x: tf.Tensor) -> tf.Tensor:
    """[B, H, W, C] → [B, H, W, C + 2]: x with its coordinate grid appended."""
    height, width = x.shape[1], x.shape[2]
    return ops.concatenate([x, coordinate_grid(ops.shape(x)[0], height, width, x.dtype)],
                           axis=-1)
