"""NT-Xent (normalised temperature-scaled cross-entropy) over paired views (SPEC §4).

SimCLR, Chen et al. 2020, https://arxiv.org/abs/2002.05709, eq. (1); used by T2I_CL
(Ye et al. 2021, https://arxiv.org/abs/2107.02423) on the sentence embeddings of two captions of
the same image (pretraining) and on the image-encoder features of the two fakes generated from
them (GAN stage), τ = 0.5.

Legend: N pairs, K feature dimension. Float32 computation, float32 scalar result.
"""

from __future__ import annotations

import tensorflow as tf

from xmcgan_tf.losses import contrastive


def nt_xent_loss(a: tf.Tensor, b: tf.Tensor, temperature: float = 0.5) -> tf.Tensor:
    """NT-Xent loss of N positive pairs (a_n, b_n).

    With z = [a; b] L2-normalised row-wise (2N vectors), s_ij = z_i · z_j and pos(i) the
    index of i's counterpart (i ± N):

      ℓ_i = −log [ exp(s_{i,pos(i)}/τ) / Σ_{k ≠ i} exp(s_ik/τ) ],   L = (1/2N) Σ_i ℓ_i.

    Each anchor has 1 positive and 2N − 2 negatives; its own similarity is excluded.
    SimCLR eq. (1), https://arxiv.org/abs/2002.05709, as used by T2I_CL,
    https://arxiv.org/abs/2107.02423.

    Code vs paper: matches the paper's mean over 2N anchors. SimCLR's TF code adds the two
    directions' N-anchor means, which is twice this value.

    Args:
      a: [N, K] first views (any float dtype).
      b: [N, K] second views, b_n the positive of a_n.
      temperature: τ > 0.

    Returns:
      Scalar float32.

    Raises:
      ValueError: if `a` and `b` are not [N, K] of the same shape, or τ ≤ 0.
    """
    a = contrastive.as_float32(a, 2, "a")
    b = contrastive.as_float32(b, 2, "b")
    if not a.shape.is_compatible_with(b.shape):
        raise ValueError(f"a and b must have the same shape [N, K], got {a.shape} and {b.shape}.")
    contrastive.check_positive(temperature, "temperature")
    n = tf.shape(a)[0]
    z = tf.math.l2_normalize(tf.concat([a, b], axis=0), axis=-1)  # [2N, K]
    logits = tf.matmul(z, z, transpose_b=True) / temperature  # [2N, 2N]
    is_self = tf.eye(2 * n, dtype=tf.bool)
    logits = tf.where(is_self, contrastive.MASKED_LOGIT, logits)
    index = tf.range(n, dtype=tf.int32)
    labels = tf.concat([index + n, index], axis=0)  # [2N]
    return tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
