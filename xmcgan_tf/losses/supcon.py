"""Supervised contrastive loss with label masks (SPEC §5).

SupCon, Khosla et al. 2020, https://arxiv.org/abs/2004.11362, eq. (2) (L^sup_out); used by SCL
(https://arxiv.org/abs/2202.13148) on the features of {image, text, image', text'} of two
same-label branches, in dual-encoder pretraining and in GAN training.

Legend: M items (4N for SCL's quadruples), K feature dimension. Float32 computation, float32
scalar result.
"""

from __future__ import annotations

import tensorflow as tf

from xmcgan_tf.losses import contrastive


def supervised_contrastive_loss(features: tf.Tensor, labels: tf.Tensor,
                                temperature: float = 0.1) -> tf.Tensor:
    """Supervised contrastive loss over labelled items.

    With z_a = f_a/‖f_a‖, A(a) = {k ≠ a} and P(a) = {p ∈ A(a) : y_p = y_a}:

      ℓ_a = −(1/|P(a)|) Σ_{p ∈ P(a)} log [ exp(z_a·z_p/τ) / Σ_{k ∈ A(a)} exp(z_a·z_k/τ) ],
      L = (1/|𝒜|) Σ_{a ∈ 𝒜} ℓ_a,   𝒜 = {a : |P(a)| > 0}.

    SupCon eq. (2), https://arxiv.org/abs/2004.11362; SCL, https://arxiv.org/abs/2202.13148.

    Code vs paper: anchors with no positive (a label that occurs once) are left out of the mean
    (the paper assumes every anchor has one; SupCon's code divides by |P(a)| = 0 for them), and
    the loss is 0 when no anchor has a positive. SupCon's code also multiplies by
    τ / τ_base (τ_base = 0.07); not done here, so the value does not depend on that constant.

    Args:
      features: [M, K] item features (any float dtype), L2-normalised here.
      labels: [M] integer class labels; items with equal labels are positives of each other.
      temperature: τ > 0 (SCL default 0.1; SupCon uses 0.07).

    Returns:
      Scalar float32.

    Raises:
      ValueError: on a rank or length mismatch, or τ ≤ 0.
      TypeError: if `labels` is not an integer tensor.
    """
    features = contrastive.as_float32(features, 2, "features")
    labels = tf.convert_to_tensor(labels)
    if not labels.dtype.is_integer:
        raise TypeError(f"labels must be an integer tensor, got dtype {labels.dtype}.")
    if labels.shape.rank is not None and labels.shape.rank != 1:
        raise ValueError(f"labels must have shape [M], got {labels.shape}.")
    if not labels.shape.is_compatible_with(features.shape[:1]):
        raise ValueError(f"labels {labels.shape} and features {features.shape} must have the "
                         "same number of items M.")
    contrastive.check_positive(temperature, "temperature")
    z = tf.math.l2_normalize(features, axis=-1)
    logits = tf.matmul(z, z, transpose_b=True) / temperature  # [M, M]
    is_self = tf.eye(tf.shape(z)[0], dtype=tf.bool)
    log_denominator = tf.reduce_logsumexp(
        tf.where(is_self, contrastive.MASKED_LOGIT, logits), axis=-1, keepdims=True)  # [M, 1]
    log_prob = logits - log_denominator  # [M, M]
    positive = tf.logical_and(tf.equal(labels[:, None], labels[None, :]),
                              tf.logical_not(is_self))  # [M, M]
    num_positives = tf.reduce_sum(tf.cast(positive, tf.float32), axis=-1)  # [M]
    sum_log_prob = tf.reduce_sum(tf.where(positive, log_prob, 0.0), axis=-1)  # [M]
    anchor_loss = -tf.math.divide_no_nan(sum_log_prob, num_positives)  # [M], 0 without positives
    num_anchors = tf.reduce_sum(tf.cast(num_positives > 0, tf.float32))
    return tf.math.divide_no_nan(tf.reduce_sum(anchor_loss), num_anchors)
