"""Residual up-sampling blocks of the XMC-GAN generator (SPEC §2, steps 3 and 5).

Both blocks double the spatial size:

    h = conv3(ReLU(norm2(conv3(up(ReLU(norm1(x)))))))
    out = h + conv1(up(x))

with nearest ×2 upsampling, Glorot-normal kernels and biases on every convolution. They differ
only in the normalisation:
- `GenBlock`: ConditionalBatchNorm with (γ, β) from the global condition c (step 3);
- `GenSpatialBlock`: SpatialConditionalBatchNorm with per-pixel (γ, β) from the spatial
  condition [word-region context, c], nearest-upsampled to each norm's input size — the
  attentional self-modulation of the paper (step 5).

Legend: B batch, H×W input size, C input channels, F output channels (`filters`), K condition
channels, h×w spatial-condition size.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf
from keras import ops

from xmcgan_tf.layers import conditional_batch_norm
from xmcgan_tf.layers import resampling
from xmcgan_tf.layers import shape_checks


class _ResidualUpBlock(keras.layers.Layer):
    """norm→ReLU→up→conv3→norm→ReLU→conv3, shortcut up→conv1, summed; ×2 spatial size.

    Subclasses set `norm_class`, a layer called as `norm(x, condition, training=...)`.

    Args:
      filters: F, output channels.
      kernel_initializer: initializer of every kernel (Glorot normal in the paper).
      **kwargs: `keras.layers.Layer` arguments (name, dtype).
    """

    norm_class: type[keras.layers.Layer]

    def __init__(self, filters: int, kernel_initializer: Any = "glorot_normal", **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

        def conv(kernel_size: int, name: str) -> keras.layers.Conv2D:
            return keras.layers.Conv2D(filters, kernel_size, padding="same",
                                       kernel_initializer=self.kernel_initializer, name=name,
                                       dtype=self.dtype_policy)

        self.norm1 = self.norm_class(kernel_initializer=self.kernel_initializer, name="norm1",
                                     dtype=self.dtype_policy)
        self.upsample = resampling.nearest_upsample("upsample", dtype=self.dtype_policy)
        self.conv1 = conv(3, "conv1")
        self.norm2 = self.norm_class(kernel_initializer=self.kernel_initializer, name="norm2",
                                     dtype=self.dtype_policy)
        self.conv2 = conv(3, "conv2")
        self.shortcut_conv = conv(1, "shortcut_conv")

    def call(self, x: tf.Tensor, condition: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        """Runs the block.

        Args:
          x: [B, H, W, C] features.
          condition: the normalisation's condition (see the subclass).
          training: BatchNorm mode.

        Returns:
          [B, 2H, 2W, F] in the compute dtype.
        """
        height, width = x.shape[1], x.shape[2]
        h = ops.relu(self.norm1(x, condition, training=training))
        h = self.conv1(self.upsample(h))  # [B, 2H, 2W, F]
        h = ops.relu(self.norm2(h, condition, training=training))
        h = self.conv2(h)
        out = h + self.shortcut_conv(self.upsample(x))
        shape_checks.assert_shape(out, [None, 2 * height, 2 * width, self.filters],
                                  f"{type(self).__name__} '{self.name}' output")
        return out

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(filters=self.filters,
                      kernel_initializer=keras.initializers.serialize(self.kernel_initializer))
        return config


class GenBlock(_ResidualUpBlock):
    """Generator up-block with conditional BN from the global condition (SPEC §2 step 3).

    Call: `block(x [B, H, W, C], condition [B, K], training=None) -> [B, 2H, 2W, F]`, where
    `condition` is c = concat(Dense(z_dim)(sentence), z).
    """

    norm_class = conditional_batch_norm.ConditionalBatchNorm


class GenSpatialBlock(_ResidualUpBlock):
    """Generator up-block with attentional self-modulation (SPEC §2 step 5).

    Call: `block(x [B, H, W, C], condition [B, h, w, K], training=None) -> [B, 2H, 2W, F]`,
    where `condition` is the spatial condition concat(word-region context, tile(c)) at the
    attention size; each norm upsamples it (nearest) to its own input size, H or 2H.
    """

    norm_class = conditional_batch_norm.SpatialConditionalBatchNorm
