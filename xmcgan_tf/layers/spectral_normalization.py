"""Spectrally normalised Dense and Conv2D layers of the XMC-GAN discriminator (SPEC §2).

Both layers hold the raw kernel W as their trainable variable and, per call, divide it by an
estimate σ of its largest singular value (one power iteration, as in the released code):

    W_mat = W reshaped to [fan_in, C_out]            (a conv kernel: fan_in = kh·kw·C_in)
    v  = l2n(u · W_matᵀ)           [1, fan_in]
    u' = l2n(v · W_mat)            [1, C_out]         (u' and v are stop-gradient)
    σ  = v · W_mat · u'ᵀ           scalar
    y  = x ⊛ (W / (σ + ε)) + b     (bias not normalised)

with l2n(x) = x · rsqrt(Σx² + ε), ε = 1e-10, and u a non-trainable [1, C_out] vector
initialised N(0, 1) and replaced by u' only when `training=True`.

Why not `keras.layers.SpectralNormalization`: that wrapper overwrites the kernel variable with
W/σ on each training call and lets the inner layer use it, so the gradient reaches the variable
as ∂L/∂(W/σ), with σ a constant, and the optimiser updates the already-normalised kernel. Here
W/σ(W) is computed inside the call, so the gradient also flows through σ:

    ∂L/∂W = (G − ⟨G, W⟩/σ · vᵀu') / σ,   G = ∂L/∂(W/σ)

as in the released XMC-GAN code (and the SN-GAN paper). Inference also normalises (with the
stored u), instead of using whatever the kernel variable last held.

Mixed precision: all variables are float32 and are not autocast; σ and W/σ are computed in
float32, and the normalised kernel and the bias are cast to the layer's compute dtype for the
matmul / convolution.

Distribution: `vector_u` has Keras's default variable settings (no aggregation, automatic
synchronisation), as `keras.layers.SpectralNormalization` creates its own: under a mirrored
strategy each replica updates its own copy in the replica context. u' depends only on u and the
(mirrored) kernel, not on the data, so the copies stay equal.

Legend: B batch, H×W spatial size, C_in input channels / features, C_out output ones.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf
from keras import ops

# ε of the l2 normalisation and of σ + ε, as in the released code.
EPSILON = 1e-10


def _l2_normalize(x: tf.Tensor) -> tf.Tensor:
    """x · rsqrt(Σ x² + ε) over all elements."""
    return x * ops.rsqrt(ops.sum(ops.square(x)) + EPSILON)


class _SpectralNormalized(keras.layers.Layer):
    """Owns W, b and u and computes W / σ(W); subclasses define the op.

    Args:
      units: C_out, output features / filters.
      use_bias: whether to add a (not normalised) bias.
      kernel_initializer: initializer of W (Glorot normal by default, as in the released code).
      bias_initializer: initializer of b.
      spatial_shape: leading kernel dimensions: () for a dense kernel [C_in, C_out], (kh, kw)
        for a conv kernel [kh, kw, C_in, C_out].
      normalize: divide W by σ(W) (the released layer); False uses W as it is and keeps no u,
        for a discriminator without the constraint (`discriminator.Discriminator.spectral_norm`).
      **kwargs: `keras.layers.Layer` arguments (name, dtype).
    """

    def __init__(self, units: int, use_bias: bool = True,
                 kernel_initializer: Any = "glorot_normal", bias_initializer: Any = "zeros",
                 spatial_shape: tuple[int, ...] = (), normalize: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.normalize = bool(normalize)
        self._spatial_shape = tuple(spatial_shape)
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel = None
        self.bias = None
        self.vector_u = None

    def build(self, input_shape):
        kernel_shape = self._spatial_shape + (int(input_shape[-1]), self.units)
        self.kernel = self.add_weight(name="kernel", shape=kernel_shape,
                                      initializer=self.kernel_initializer, autocast=False)
        if self.use_bias:
            self.bias = self.add_weight(name="bias", shape=(self.units,),
                                        initializer=self.bias_initializer, autocast=False)
        if not self.normalize:
            return
        self.vector_u = self.add_weight(name="vector_u", shape=(1, self.units),
                                        initializer=keras.initializers.RandomNormal(stddev=1.0),
                                        trainable=False, autocast=False)

    def normalized_kernel(self, training: bool | None = False) -> tf.Tensor:
        """W / (σ + ε) in float32, same shape as W; with `training`, assigns u ← u'. W itself
        when the layer does not normalise."""
        kernel = ops.convert_to_tensor(self.kernel)
        if not self.normalize:
            return kernel
        matrix = ops.reshape(kernel, (-1, self.units))  # [fan_in, C_out]
        vector_v = _l2_normalize(ops.matmul(self.vector_u, ops.transpose(matrix)))
        new_u = _l2_normalize(ops.matmul(vector_v, matrix))
        vector_v = ops.stop_gradient(vector_v)
        new_u = ops.stop_gradient(new_u)
        sigma = ops.matmul(ops.matmul(vector_v, matrix), ops.transpose(new_u))[0, 0]
        if training:
            self.vector_u.assign(new_u)
        return kernel / (sigma + EPSILON)

    def _add_bias(self, outputs: tf.Tensor) -> tf.Tensor:
        if self.bias is None:
            return outputs
        return outputs + ops.cast(self.bias, self.compute_dtype)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(units=self.units, use_bias=self.use_bias, normalize=self.normalize,
                      kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
                      bias_initializer=keras.initializers.serialize(self.bias_initializer))
        return config


class SpectralDense(_SpectralNormalized):
    """Dense layer with a spectrally normalised kernel: y = x · W/σ(W) + b.

    W is [C_in, C_out]; u is [1, C_out]. Arguments: see `_SpectralNormalized`.
    """

    def call(self, x: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        """Applies the layer.

        Args:
          x: [..., C_in] features.
          training: when True, the power-iteration vector u is updated.

        Returns:
          [..., C_out] in the layer's compute dtype.
        """
        kernel = ops.cast(self.normalized_kernel(training), self.compute_dtype)
        return self._add_bias(ops.matmul(x, kernel))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)


class SpectralConv2D(_SpectralNormalized):
    """Conv2D (stride 1, channels last) with a spectrally normalised kernel.

    W is [kh, kw, C_in, C_out], normalised as the [kh·kw·C_in, C_out] matrix; u is [1, C_out].

    Args:
      filters: C_out, output channels.
      kernel_size: an int (square kernel) or a pair (kh, kw).
      padding: "same" or "valid".
      **kwargs: see `_SpectralNormalized` (use_bias, kernel_initializer, bias_initializer,
        name, dtype).
    """

    def __init__(self, filters: int, kernel_size: int | tuple[int, int], padding: str = "same",
                 **kwargs):
        if isinstance(kernel_size, int):
            kernel_size = (kernel_size, kernel_size)
        kernel_size = tuple(int(k) for k in kernel_size)
        super().__init__(filters, spatial_shape=kernel_size, **kwargs)
        self.kernel_size = kernel_size
        if padding not in ("same", "valid"):
            raise ValueError(f"SpectralConv2D '{self.name}': padding must be 'same' or 'valid', "
                             f"received {padding!r}")
        self.padding = padding

    @property
    def filters(self) -> int:
        return self.units

    def call(self, x: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        """Applies the layer.

        Args:
          x: [B, H, W, C_in] features.
          training: when True, the power-iteration vector u is updated.

        Returns:
          [B, H', W', C_out] in the layer's compute dtype (H' = H with "same" padding).
        """
        kernel = ops.cast(self.normalized_kernel(training), self.compute_dtype)
        outputs = ops.conv(x, kernel, strides=1, padding=self.padding,
                           data_format="channels_last")
        return self._add_bias(outputs)

    def compute_output_shape(self, input_shape):
        batch, height, width = input_shape[:3]
        if self.padding == "valid":
            height = None if height is None else height - self.kernel_size[0] + 1
            width = None if width is None else width - self.kernel_size[1] + 1
        return (batch, height, width, self.units)

    def get_config(self) -> dict:
        config = super().get_config()
        config["filters"] = config.pop("units")
        config.update(kernel_size=self.kernel_size, padding=self.padding)
        return config
