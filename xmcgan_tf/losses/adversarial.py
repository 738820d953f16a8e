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


def _unconditional_logits(logits: tf.Tensor, image_features: tf.Tensor,
                          sentence_projection: tf.Tensor) -> tf.Tensor:
    """ψ(φ(x)) = D(x, s) − φ(x)·e(s) of a projection discriminator, [B] float32."""
    logits = _logits_as_float32(logits, "logits")
    own = tf.reduce_sum(tf.cast(image_features, tf.float32)
                        * tf.cast(sentence_projection, tf.float32), axis=-1)
    return logits - own


def counterfactual_logits(logits: tf.Tensor, image_features: tf.Tensor,
                          sentence_projection: tf.Tensor,
                          counterfactual_projection: tf.Tensor) -> tf.Tensor:
    """A projection discriminator's logits of real images paired with their counterfactual
    captions (each a false caption differing from the image's own caption in one attribute).

    With the projection logit D(x, s) = ψ(φ(x)) + φ(x)·e(s):

      D(x_n, s'_n) = D(x_n, s_n) − φ(x_n)·e(s_n) + φ(x_n)·e(s'_n).

    Not in XMC-GAN: the matching-aware term of Reed et al. 2016 (GAN-INT-CLS, real images with
    wrong captions scored as fakes) with near-miss captions instead of random ones, so that D's
    logit must check each attribute a caption names (BENCHMARKS.md, "Fidelity").

    Args:
      logits: [B] D(x_n, s_n) of real images with their own captions.
      image_features: [B, C] φ(x_n) (x_pool).
      sentence_projection: [B, C] e(s_n).
      counterfactual_projection: [B, C] e(s'_n).

    Returns:
      [B] float32.
    """
    return (_unconditional_logits(logits, image_features, sentence_projection)
            + tf.reduce_sum(tf.cast(image_features, tf.float32)
                            * tf.cast(counterfactual_projection, tf.float32), axis=-1))


def hardest_mismatch_logits(logits: tf.Tensor, image_features: tf.Tensor,
                            sentence_projection: tf.Tensor, negative_projection: tf.Tensor,
                            negative_excluded: tf.Tensor | None = None) -> tf.Tensor:
    """A projection discriminator's logits of real images paired with their hardest wrong
    caption from a caption bank.

    With the projection logit D(x, s) = ψ(φ(x)) + φ(x)·e(s), image n's hardest bank caption is
    the one D matches best:

      D_mis(x_n) = D(x_n, s_n) − φ(x_n)·e(s_n) + max_m φ(x_n)·e_m,

    the maximum over the bank captions m not excluded for n (e.g. its own image's captions).
    Not in XMC-GAN: a matching-aware term (Reed et al. 2016, GAN-INT-CLS, scored real images
    with random wrong captions as fakes) with the hardest of N captions instead of a random
    one (BENCHMARKS.md, "Fidelity").

    Args:
      logits: [B] D(x_n, s_n) of real images with their own captions.
      image_features: [B, C] φ(x_n) (x_pool).
      sentence_projection: [B, C] e(s_n).
      negative_projection: [N, C] e of the bank captions.
      negative_excluded: optional [B, N] bool, True where bank caption m describes image n.

    Returns:
      [B] float32.
    """
    scores = tf.matmul(tf.cast(image_features, tf.float32),
                       tf.cast(negative_projection, tf.float32), transpose_b=True)  # [B, N]
    if negative_excluded is not None:
        scores = tf.where(negative_excluded, tf.float32.min, scores)
    return (_unconditional_logits(logits, image_features, sentence_projection)
            + tf.reduce_max(scores, axis=-1))


def mismatch_hinge_loss(mismatch_logits: tf.Tensor) -> tf.Tensor:
    """E_x[max(0, 1 + D(x, s'))]: a real image with a wrong caption s' is scored as a fake.

    Args:
      mismatch_logits: [B] D(x, s'), from `hardest_mismatch_logits` or
        `counterfactual_logits`.

    Returns:
      Scalar float32.
    """
    mismatch_logits = _logits_as_float32(mismatch_logits, "mismatch_logits")
    return tf.reduce_mean(tf.nn.relu(1.0 + mismatch_logits))
