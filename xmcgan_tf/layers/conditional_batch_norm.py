"""Conditional batch normalisation of the XMC-GAN generator (SPEC §2).

Both layers normalise with a BatchNormalization that has no scale or offset of its own
(momentum 0.9, ε = 1e-5) and modulate the result with a predicted scale γ and shift β:

    y = BN(x) · (1 + γ) + β

`ConditionalBatchNorm` predicts one (γ, β) per example from a condition vector (GenBlock, with
the global condition c); `SpatialConditionalBatchNorm` predicts them per pixel from a spatial
condition map (GenSpatialBlock and the generator head: attentional self-modulation).

The batch statistics, the moving averages and the modulation are computed in float32 whatever
the dtype policy; the result is returned in the layer's compute dtype.

Legend: B batch, H×W feature size, C feature channels, K condition channels, h×w condition size.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf
from keras import ops

from xmcgan_tf.layers import resampling


def _batch_norm(momentum: float, epsilon: float) -> keras.layers.BatchNormalization:
    return keras.layers.BatchNormalization(center=False, scale=False, momentum=momentum,
                                           epsilon=epsilon, name="batch_norm", dtype="float32")


def _modulate(normalized: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor) -> tf.Tensor:
    """BN(x) · (1 + γ) + β in float32; γ and β broadcast against the normalised features."""
    gamma = ops.cast(gamma, "float32")
    beta = ops.cast(beta, "float32")
    return normalized * (1.0 + gamma) + beta


class _ModulatedBatchNorm(keras.layers.Layer):
    """y = BN(x) · (1 + γ) + β; each subclass builds γ and β and defines
    `scale_and_shift(condition) -> (γ, β)`, each broadcastable to x [B, H, W, C].

    Args:
      momentum: moving-average momentum of the batch statistics.
      epsilon: variance epsilon.
      kernel_initializer: initializer of the γ and β projections.
      **kwargs: `keras.layers.Layer` arguments (name, dtype).
    """

    def __init__(self, momentum: float = 0.9, epsilon: float = 1e-5,
                 kernel_initializer: Any = "glorot_normal", **kwargs):
        super().__init__(**kwargs)
        self.momentum = momentum
        self.epsilon = epsilon
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.batch_norm = _batch_norm(momentum, epsilon)
        self.gamma = None
        self.beta = None

    def call(self, x: tf.Tensor, condition: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        """Normalises and modulates `x`.

        Args:
          x: [B, H, W, C] features.
          condition: the subclass's condition ([B, K] or [B, h, w, K]).
          training: batch statistics (True) or moving averages (False).

        Returns:
          [B, H, W, C] in the layer's compute dtype.
        """
        gamma, beta = self.scale_and_shift(condition)
        normalized = self.batch_norm(ops.cast(x, "float32"), training=training)
        return ops.cast(_modulate(normalized, gamma, beta), self.compute_dtype)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(momentum=self.momentum, epsilon=self.epsilon,
                      kernel_initializer=keras.initializers.serialize(self.kernel_initializer))
        return config


class ConditionalBatchNorm(_ModulatedBatchNorm):
    """Batch norm whose per-channel scale and shift are Dense projections of a condition vector.

    γ = Dense(C)(condition), β = Dense(C)(condition); y = BN(x) · (1 + γ) + β, with x
    [B, H, W, C] and condition [B, K]. Arguments: see `_ModulatedBatchNorm`.
    """

    def build(self, x_shape, condition_shape):
        if len(x_shape) != 4 or len(condition_shape) != 2:
            raise ValueError(f"ConditionalBatchNorm '{self.name}': expected x [B, H, W, C] and "
                             f"condition [B, K], received {tuple(x_shape)} and "
                             f"{tuple(condition_shape)}")
        channels = x_shape[-1]
        self.gamma = keras.layers.Dense(channels, kernel_initializer=self.kernel_initializer,
                                        name="gamma", dtype=self.dtype_policy)
        self.beta = keras.layers.Dense(channels, kernel_initializer=self.kernel_initializer,
                                       name="beta", dtype=self.dtype_policy)
        self.batch_norm.build(x_shape)
        self.gamma.build(condition_shape)
        self.beta.build(condition_shape)

    def scale_and_shift(self, condition: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """condition [B, K] -> γ, β [B, 1, 1, C]."""
        return self.gamma(condition)[:, None, None, :], self.beta(condition)[:, None, None, :]


class SpatialConditionalBatchNorm(_ModulatedBatchNorm):
    """Batch norm with per-pixel scale and shift from 1×1 convolutions of a spatial condition.

    The condition map [B, h, w, K] is nearest-upsampled to the feature size H×W (an integer
    factor); γ = Conv1×1(C), β = Conv1×1(C) of it; y = BN(x) · (1 + γ) + β. The 1×1
    convolutions run at the condition's own size and their outputs are upsampled, which equals
    convolving the upsampled condition (a 1×1 convolution acts on each pixel alone and nearest
    upsampling only repeats pixels) at a fraction of the cost. Arguments: see
    `_ModulatedBatchNorm`.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.upsample = None

    def build(self, x_shape, condition_shape):
        if len(x_shape) != 4 or len(condition_shape) != 4:
            raise ValueError(f"SpatialConditionalBatchNorm '{self.name}': expected x "
                             f"[B, H, W, C] and condition [B, h, w, K], received "
                             f"{tuple(x_shape)} and {tuple(condition_shape)}")
        height, width = x_shape[1], x_shape[2]
        cond_height, cond_width = condition_shape[1], condition_shape[2]
        factor = height // cond_height
        if height % cond_height or width != factor * cond_width:
            raise ValueError(f"SpatialConditionalBatchNorm '{self.name}': feature size "
                             f"{height}x{width} is not an integer multiple of the condition "
                             f"size {cond_height}x{cond_width}")
        channels = x_shape[-1]
        self.gamma = keras.layers.Conv2D(channels, 1, kernel_initializer=self.kernel_initializer,
                                         name="gamma", dtype=self.dtype_policy)
        self.beta = keras.layers.Conv2D(channels, 1, kernel_initializer=self.kernel_initializer,
                                        name="beta", dtype=self.dtype_policy)
        self.upsample = resampling.nearest_upsample("upsample", factor=factor,
                                                    dtype=self.dtype_policy)
        self.batch_norm.build(x_shape)
        self.gamma.build(condition_shape)
        self.beta.build(condition_shape)

    def scale_and_shift(self, condition: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """condition [B, h, w, K] -> γ, β [B, H, W, C]."""
        return self.upsample(self.gamma(condition)), self.upsample(self.beta(condition))
