"""Hinge adversarial losses of XMC-GAN's discriminator and generator (SPEC §3).

Legend: B per-replica batch. Logits may be any float dtype; everything is computed in float32
and each loss is a float32 scalar, a mean over this replica's examples.
"""

from __future__ import annotations

import tensorflow as tf


def _logits_as_float32(logits: tf.Tensor, name: str) -> tf.Tensor:
    """Checks that `logits` is a [B] floating-point tensor and casts it to float32."""
    logits = tf.convert_to_tensor(logits)
    if not logits.dtype.is_floating:
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {logits.dtype}.")
    if logits.shape.rank is not None and logits.shape.rank != 1:
        raise ValueError(f"{name} must have shape [B], got {logits.shape}.")
    return tf.cast(logits, tf.float32)


def hinge_discriminator_loss(real_logits: tf.Tensor, fake_logits: tf.Tensor) -> tf.Tensor:
    """Hinge loss of the discriminator.

      L_D^hinge = E_x[max(0, 1 − D(x))] + E_z[max(0, 1 + D(G(z)))]

    Lim & Ye 2017 (https://arxiv.org/abs/1705.02894), as used by XMC-GAN
    (https://arxiv.org/abs/2101.04702, §3). Code vs paper: identical; the two expectations are
    separate batch means, so real and fake halves may differ in size.

    Args:
      real_logits: [B] discriminator logits D(x) of real images (matching captions).
      fake_logits: [B'] discriminator logits D(G(z)) of generated images.

    Returns:
      Scalar float32.
    """
    real_logits = _logits_as_float32(real_logits, "real_logits")
    fake_logits = _logits_as_float32(fake_logits, "fake_logits")
    return (tf.reduce_mean(tf.nn.relu(1.0 - real_logits))
            + tf.reduce_mean(tf.nn.relu(1.0 + fake_logits)))


def hinge_generator_loss(fake_logits: tf.Tensor) -> tf.Tensor:
    """Hinge loss of the generator.

      L_G^hinge = −E_z[D(G(z))]

    Lim & Ye 2017 (https://arxiv.org/abs/1705.02894), as used by XMC-GAN
    (https://arxiv.org/abs/2101.04702, §3). Code vs paper: identical.

    Args:
      fake_logits: [B] discriminator logits D(G(z)) of generated images.

    Returns:
      Scalar float32.
    """
    fake_logits = _logits_as_float32(fake_logits, "fake_logits")
    return -tf.reduce_mean(fake_logits)
