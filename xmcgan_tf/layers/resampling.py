"""Resampling layers of the XMC-GAN residual blocks (SPEC §2).

The generator upsamples by nearest-neighbour repetition and the discriminator downsamples by
2×2 average pooling, as in the released code. Both are plain Keras layers; these factories only
fix the paper's settings so every block builds them the same way.

Legend: B batch, H×W spatial size, C channels.
"""

from __future__ import annotations

from typing import Any

import keras


def nearest_upsample(name: str, factor: int = 2, dtype: Any = None) -> keras.layers.Layer:
    """Nearest-neighbour upsampling: [B, H, W, C] -> [B, factor·H, factor·W, C].

    Args:
      name: layer name.
      factor: integer scale factor (≥ 1) applied to both spatial dimensions.
      dtype: the layer's dtype policy (pass the parent's `dtype_policy`).

    Returns:
      A `keras.layers.UpSampling2D` with nearest interpolation.

    Raises:
      ValueError: `factor` is not a positive integer.
    """
    if not isinstance(factor, int) or factor < 1:
        raise ValueError(f"nearest_upsample '{name}': factor must be a positive integer, "
                         f"received {factor!r}")
    return keras.layers.UpSampling2D(size=factor, interpolation="nearest", name=name,
                                     dtype=dtype)


def average_downsample(name: str, dtype: Any = None) -> keras.layers.Layer:
    """2×2 average pooling with stride 2: [B, H, W, C] -> [B, H/2, W/2, C].

    Uses "same" padding, which on the TensorFlow backend averages only the valid cells at an
    odd border, like the released code's TF-style pooling; on even sizes it equals "valid".

    Args:
      name: layer name.
      dtype: the layer's dtype policy (pass the parent's `dtype_policy`).

    Returns:
      A `keras.layers.AveragePooling2D`.
    """
    return keras.layers.AveragePooling2D(pool_size=2, strides=2, padding="same", name=name,
                                         dtype=dtype)
