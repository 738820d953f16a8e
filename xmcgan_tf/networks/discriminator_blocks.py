"""Residual down-sampling blocks of the XMC-GAN discriminator (SPEC §2).

Every convolution and dense layer of the discriminator is spectrally normalised with one
power iteration per call, the kernel divided by σ inside the call as in the released code
(`xmcgan_tf.layers.spectral_normalization`); `spectral_conv` and `spectral_dense` build them
(Glorot-normal kernels, as in the released code). With `spectral_norm=False` the same layers
use their raw kernels.

    DiscOptimizedBlock (first block, on images):
        h = down(conv3(ReLU(conv3(x))));      out = h + conv1(down(x))
    DiscBlock:
        h = conv3(ReLU(conv3(ReLU(x)))), then down(h) if downsampling;
        shortcut = conv1(x) if downsampling or C ≠ F, else x; then down(shortcut) if downsampling.

`down` is 2×2 average pooling.

Legend: B batch, H×W input size, C input channels, F output channels (`filters`).
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf
from keras import ops

from xmcgan_tf.layers import resampling
from xmcgan_tf.layers import shape_checks
from xmcgan_tf.layers import spectral_normalization


def spectral_conv(filters: int, kernel_size: int, name: str, dtype: Any = None,
                  kernel_initializer: Any = "glorot_normal",
                  normalize: bool = True) -> keras.layers.Layer:
    """A same-padded, spectrally normalised Conv2D (with bias).

    Args:
      filters: output channels.
      kernel_size: square kernel size.
      name: layer name.
      dtype: dtype policy.
      kernel_initializer: kernel initializer.
      normalize: divide the kernel by σ (False: the raw kernel, the same variables but u).

    Returns:
      A `spectral_normalization.SpectralConv2D`.
    """
    return spectral_normalization.SpectralConv2D(filters, kernel_size, padding="same",
                                                 kernel_initializer=kernel_initializer,
                                                 normalize=normalize, name=name, dtype=dtype)


def spectral_dense(units: int, name: str, dtype: Any = None,
                   kernel_initializer: Any = "glorot_normal",
                   normalize: bool = True) -> keras.layers.Layer:
    """A spectrally normalised Dense layer (with bias).

    Args:
      units: output features.
      name: layer name.
      dtype: dtype policy.
      kernel_initializer: kernel initializer.
      normalize: divide the kernel by σ (False: the raw kernel, the same variables but u).

    Returns:
      A `spectral_normalization.SpectralDense`.
    """
    return spectral_normalization.SpectralDense(units, kernel_initializer=kernel_initializer,
                                                normalize=normalize, name=name, dtype=dtype)


class DiscOptimizedBlock(keras.layers.Layer):
    """First discriminator block: conv3→ReLU→conv3→down, shortcut down→conv1; halves H, W.

    Args:
      filters: F, output channels.
      kernel_initializer: initializer of every kernel.
      spectral_norm: spectrally normalise every convolution (the released block).
      **kwargs: `keras.layers.Layer` arguments (name, dtype).
    """

    def __init__(self, filters: int, kernel_initializer: Any = "glorot_normal",
                 spectral_norm: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.spectral_norm = bool(spectral_norm)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.conv1 = spectral_conv(filters, 3, "conv1", self.dtype_policy,
                                   self.kernel_initializer, self.spectral_norm)
        self.conv2 = spectral_conv(filters, 3, "conv2", self.dtype_policy,
                                   self.kernel_initializer, self.spectral_norm)
        self.shortcut_conv = spectral_conv(filters, 1, "shortcut_conv", self.dtype_policy,
                                           self.kernel_initializer, self.spectral_norm)
        self.pool = resampling.average_downsample("downsample", dtype=self.dtype_policy)

    def call(self, x: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        """Runs the block.

        Args:
          x: [B, H, W, C] images or features (H, W even).
          training: when True, spectral normalisation updates its power-iteration vectors.

        Returns:
          [B, H/2, W/2, F] in the compute dtype.
        """
        height, width = x.shape[1], x.shape[2]
        h = self.conv1(x, training=training)
        h = self.conv2(ops.relu(h), training=training)
        out = self.pool(h) + self.shortcut_conv(self.pool(x), training=training)
        shape_checks.assert_shape(out, [None, height // 2, width // 2, self.filters],
                                  f"DiscOptimizedBlock '{self.name}' output")
        return out

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(filters=self.filters, spectral_norm=self.spectral_norm,
                      kernel_initializer=keras.initializers.serialize(self.kernel_initializer))
        return config


class DiscBlock(keras.layers.Layer):
    """Discriminator block: ReLU→conv3→ReLU→conv3 [→down], learned shortcut when needed.

    The 1×1 shortcut convolution exists when the block downsamples or changes the number of
    channels; otherwise the shortcut is the identity.

    Args:
      filters: F, output channels.
      downsample: whether to halve H and W with 2×2 average pooling.
      kernel_initializer: initializer of every kernel.
      spectral_norm: spectrally normalise every convolution (the released block).
      **kwargs: `keras.layers.Layer` arguments (name, dtype).
    """

    def __init__(self, filters: int, downsample: bool = True,
                 kernel_initializer: Any = "glorot_normal", spectral_norm: bool = True,
                 **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.downsample = downsample
        self.spectral_norm = bool(spectral_norm)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.conv1 = spectral_conv(filters, 3, "conv1", self.dtype_policy,
                                   self.kernel_initializer, self.spectral_norm)
        self.conv2 = spectral_conv(filters, 3, "conv2", self.dtype_policy,
                                   self.kernel_initializer, self.spectral_norm)
        self.pool = (resampling.average_downsample("downsample", dtype=self.dtype_policy)
                     if downsample else None)
        self.shortcut_conv = None

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"DiscBlock '{self.name}': expected input [B, H, W, C], received "
                             f"{tuple(input_shape)}")
        if self.downsample or input_shape[-1] != self.filters:
            self.shortcut_conv = spectral_conv(self.filters, 1, "shortcut_conv",
                                               self.dtype_policy, self.kernel_initializer,
                                               self.spectral_norm)
            self.shortcut_conv.build(input_shape)
        self.conv1.build(input_shape)
        self.conv2.build(tuple(input_shape[:-1]) + (self.filters,))

    def call(self, x: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        """Runs the block.

        Args:
          x: [B, H, W, C] features.
          training: when True, spectral normalisation updates its power-iteration vectors.

        Returns:
          [B, H', W', F] in the compute dtype, H' = H/2 when downsampling, else H.
        """
        height, width = x.shape[1], x.shape[2]
        h = self.conv1(ops.relu(x), training=training)
        h = self.conv2(ops.relu(h), training=training)
        shortcut = x if self.shortcut_conv is None else self.shortcut_conv(x, training=training)
        if self.pool is not None:
            h = self.pool(h)
            shortcut = self.pool(shortcut)
            height, width = height // 2, width // 2
        out = h + shortcut
        shape_checks.assert_shape(out, [None, height, width, self.filters],
                                  f"DiscBlock '{self.name}' output")
        return out

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(filters=self.filters, downsample=self.downsample,
                      spectral_norm=self.spectral_norm,
                      kernel_initializer=keras.initializers.serialize(self.kernel_initializer))
        return config
