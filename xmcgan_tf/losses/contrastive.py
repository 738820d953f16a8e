"""Symmetric InfoNCE: XMC-GAN's sentence and image contrastive losses (SPEC §3).

XMC-GAN, Zhang et al. 2021, "Cross-Modal Contrastive Learning for Text-to-Image Generation",
https://arxiv.org/abs/2101.04702, §3 (contrastive losses).

Every contrastive loss in `xmcgan_tf` ends in the same symmetric cross-entropy over a matrix of
similarity logits whose matching pairs lie on the diagonal; `symmetric_cross_entropy` is that
final step and is reused by `word_contrastive` and `damsm`.

Legend: B per-replica batch, G = B · replicas (the gathered batch when `global_negatives`),
K feature dimension. All computations are in float32 whatever the input dtype (bfloat16 inputs
are cast), and every loss returns a float32 scalar that is a mean over this replica's examples.
"""

from __future__ import annotations

import tensorflow as tf

from xmcgan_tf.losses import distribution

# Logit given to excluded entries (self-similarities, padding words). exp(MASKED_LOGIT - max)
# underflows to exactly 0 in float32 while staying finite, so gradients stay finite too.
MASKED_LOGIT = -1e9


def as_float32(x: tf.Tensor, rank: int, name: str) -> tf.Tensor:
    """Converts a loss input to float32 after checking its rank.

    Args:
      x: tensor-like of any real dtype (bfloat16 and float16 included).
      rank: required rank.
      name: argument name used in the error message.

    Returns:
      `x` as a float32 tensor.

    Raises:
      ValueError: if the rank of `x` is known and differs from `rank`.
      TypeError: if `x` is not a real number tensor.
    """
    x = tf.convert_to_tensor(x)
    if not (x.dtype.is_floating or x.dtype.is_integer or x.dtype.is_bool):
        raise TypeError(f"{name} must be a real-valued tensor, got dtype {x.dtype}.")
    if x.shape.rank is not None and x.shape.rank != rank:
        raise ValueError(f"{name} must have rank {rank}, got shape {x.shape}.")
    return tf.cast(x, tf.float32)


def check_positive(value: float, name: str) -> None:
    """Raises ValueError if a Python-number hyper-parameter is not > 0 (tensors pass unchecked)."""
    if isinstance(value, (int, float)) and not value > 0:
        raise ValueError(f"{name} must be > 0, got {value}.")


def _check_paired(a: tf.Tensor, b: tf.Tensor, a_name: str, b_name: str) -> None:
    """Raises ValueError if two [B, K] feature matrices have statically different shapes."""
    if not a.shape.is_compatible_with(b.shape):
        raise ValueError(
            f"{a_name} and {b_name} must have the same shape [B, K], got {a.shape} and {b.shape}.")


def diagonal_cross_entropy(logits: tf.Tensor, label_offset: tf.Tensor | int = 0) -> tf.Tensor:
    """Mean softmax cross-entropy of logits whose correct class is on the (offset) diagonal.

    Args:
      logits: [B, G] float32; row n's correct column is `label_offset + n`.
      label_offset: scalar int, column of row 0's match (`replica_id · B` when the columns are
        a gathered global batch, else 0).

    Returns:
      Scalar float32: (1/B) Σ_n −log softmax(logits_n)[label_offset + n].
    """
    labels = tf.range(tf.shape(logits)[0], dtype=tf.int32) + tf.cast(label_offset, tf.int32)
    return tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))


def symmetric_cross_entropy(row_logits: tf.Tensor, column_logits: tf.Tensor,
                            label_offset: tf.Tensor | int = 0) -> tf.Tensor:
    """CE over the rows plus CE over the columns of a matching-pairs logit matrix.

    With `L` the [G, G] logits between all `a` and all `b` of the global batch, this replica
    owns rows `L[o:o+B, :]` (its `a` against every `b`) and columns `L[:, o:o+B]` (every `a`
    against its `b`), o = `label_offset`. The loss is

      CE_rows + CE_cols = (1/B) Σ_n −log softmax(L[o+n, :])[o+n]
                        + (1/B) Σ_n −log softmax(L[:, o+n])[o+n].

    Args:
      row_logits: [B, G] float32, this replica's rows `L[o:o+B, :]`.
      column_logits: [B, G] float32, this replica's columns transposed, `L[:, o:o+B]ᵀ`.
      label_offset: scalar int, o.

    Returns:
      Scalar float32.
    """
    return (diagonal_cross_entropy(row_logits, label_offset)
            + diagonal_cross_entropy(column_logits, label_offset))


def symmetric_contrastive_loss(a: tf.Tensor, b: tf.Tensor, temperature: float,
                               global_negatives: bool = False,
                               extra_b: tf.Tensor | None = None,
                               extra_b_excluded: tf.Tensor | None = None) -> tf.Tensor:
    """Symmetric InfoNCE between paired features with in-batch negatives.

    With â = a/‖a‖, b̂ = b/‖b‖ and logits L = â b̂ᵀ / τ (pair n is on the diagonal):

      ℒ(a, b) = −(1/B) Σ_n log [exp(L_nn) / Σ_m exp(L_nm)]
                −(1/B) Σ_n log [exp(L_nn) / Σ_m exp(L_mn)].

    XMC-GAN §3, https://arxiv.org/abs/2101.04702.

    Code vs paper: the paper writes each direction as a sum over the batch and, for L_sent and
    L_img, only the image→text / fake→real direction; the released code (which SPEC §3 follows)
    averages each direction over the batch and adds both directions.

    With `global_negatives=True` inside a replica context with more than one replica, both sides
    are all-gathered (`distribution.gather_replicas`): the local `a` rows are scored against all
    G `b` and the local `b` against all G `a`, labels offset by `replica_id · B`. Averaged over
    replicas this equals the single-replica loss on the whole global batch. Requires the same B
    on every replica. Outside such a context it is the local loss.

    With `extra_b` (N more `b` that pair with no `a`), each a→b row also scores â against
    them: the row softmax runs over G + N columns, L'_nm = â_n ê_mᵀ / τ appended to L_n·,
    minus the entries `extra_b_excluded` marks (logit −1e9: e.g. other captions of a_n's own
    image). The b→a direction is unchanged.

    Args:
      a: [B, K] features (any float dtype; computed in float32).
      b: [B, K] features paired row by row with `a`.
      temperature: τ > 0.
      global_negatives: use the other replicas' examples as extra negatives.
      extra_b: optional [N, K] extra negatives of every a→b row.
      extra_b_excluded: optional [B, N] bool, True where extra_b[m] is not a negative of a_n.

    Returns:
      Scalar float32 loss, the mean over this replica's B pairs.

    Raises:
      ValueError: on inputs that are not [B, K] of the same shape, or τ ≤ 0.
    """
    a = as_float32(a, 2, "a")
    b = as_float32(b, 2, "b")
    _check_paired(a, b, "a", "b")
    check_positive(temperature, "temperature")
    a = tf.math.l2_normalize(a, axis=-1)
    b = tf.math.l2_normalize(b, axis=-1)
    if global_negatives:
        all_a = distribution.gather_replicas(a)  # [G, K]
        all_b = distribution.gather_replicas(b)  # [G, K]
        label_offset = distribution.replica_id() * tf.shape(a)[0]
    else:
        all_a, all_b, label_offset = a, b, 0
    row_logits = tf.matmul(a, all_b, transpose_b=True) / temperature  # [B, G]
    column_logits = tf.matmul(b, all_a, transpose_b=True) / temperature  # [B, G]
    if extra_b is not None:
        extra_b = tf.math.l2_normalize(as_float32(extra_b, 2, "extra_b"), axis=-1)
        extra_logits = tf.matmul(a, extra_b, transpose_b=True) / temperature  # [B, N]
        if extra_b_excluded is not None:
            extra_logits = tf.where(extra_b_excluded, MASKED_LOGIT, extra_logits)
        row_logits = tf.concat([row_logits, extra_logits], axis=1)  # [B, G + N]
    return symmetric_cross_entropy(row_logits, column_logits, label_offset)


def contrastive_accuracy(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """Row-wise top-1 retrieval accuracy: how often a_n's most similar b is its own pair b_n.

      acc = (1/B) Σ_n 1[argmax_m cos(a_n, b_m) = n]

    Ties go to the lowest index (`tf.argmax`). Local to the replica.

    Args:
      a: [B, K] query features (any float dtype).
      b: [B, K] candidate features paired row by row with `a`.

    Returns:
      Scalar float32 in [0, 1].
    """
    a = as_float32(a, 2, "a")
    b = as_float32(b, 2, "b")
    _check_paired(a, b, "a", "b")
    similarity = tf.matmul(tf.math.l2_normalize(a, axis=-1),
                           tf.math.l2_normalize(b, axis=-1), transpose_b=True)  # [B, B]
    predicted = tf.argmax(similarity, axis=-1, output_type=tf.int32)
    correct = tf.equal(predicted, tf.range(tf.shape(a)[0], dtype=tf.int32))
    return tf.reduce_mean(tf.cast(correct, tf.float32))


def sentence_contrastive_loss(image_features: tf.Tensor, sentence_features: tf.Tensor,
                              temperature: float = 0.1,
                              global_negatives: bool = False,
                              negative_sentence_features: tf.Tensor | None = None,
                              negative_excluded: tf.Tensor | None = None) -> tf.Tensor:
    """XMC-GAN sentence–image contrastive loss L_sent.

      L_sent = ℒ(f_img(x), f_sent(s)) with cos(u, v)/τ logits, τ = 0.1,

    where ℒ is `symmetric_contrastive_loss`; in the discriminator f_img(x) = x_pool (the summed
    final activations) and f_sent(s) = e (the projected sentence embedding), the same e that
    conditions the projection logit. XMC-GAN §3 (L_sent), https://arxiv.org/abs/2101.04702.

    Code vs paper: symmetric (image→text + text→image), each a batch mean, as in the released
    code (see `symmetric_contrastive_loss`).

    A caption bank (`negative_sentence_features`, not in the paper or the released code) adds
    N captions of other images as negatives of every image→text row. In-batch negatives of a
    small batch rarely differ from the positive in one attribute only (e.g. a red triangle
    against a red circle), so D can solve L_sent, and G satisfy it, on the easiest attribute;
    among N ≫ B captions such near misses are common (BENCHMARKS.md, "Fidelity").

    Args:
      image_features: [B, C] image side (x_pool), real or generated images.
      sentence_features: [B, C] text side (e), paired row by row.
      temperature: τ > 0.
      global_negatives: all-gather negatives across replicas.
      negative_sentence_features: optional [N, C] bank captions' e, extra negatives.
      negative_excluded: optional [B, N] bool, True where bank caption m describes image n.

    Returns:
      Scalar float32.
    """
    return symmetric_contrastive_loss(image_features, sentence_features, temperature,
                                      global_negatives=global_negatives,
                                      extra_b=negative_sentence_features,
                                      extra_b_excluded=negative_excluded)


def image_contrastive_loss(fake_features: tf.Tensor, real_features: tf.Tensor,
                           temperature: float = 0.1,
                           global_negatives: bool = False) -> tf.Tensor:
    """XMC-GAN real–fake image contrastive loss L_img.

      L_img = ℒ(f(G(z, s)), f(x)) with cos(u, v)/τ logits, τ = 0.1,

    where ℒ is `symmetric_contrastive_loss`, f is the discriminator's x_pool (L_img^D) or a
    frozen pretrained image encoder (L_img^enc), and the fake G(z, s) is generated from the
    caption of the real image x in the same row. XMC-GAN §3 (L_img),
    https://arxiv.org/abs/2101.04702.

    Code vs paper: the paper uses VGG features for f; the released code uses ResNet-50 logits
    for L_img^enc and adds L_img^D on x_pool. Symmetric, each direction a batch mean.

    Args:
      fake_features: [B, C] features of generated images.
      real_features: [B, C] features of the real images, paired row by row.
      temperature: τ > 0.
      global_negatives: all-gather negatives across replicas.

    Returns:
      Scalar float32.
    """
    return symmetric_contrastive_loss(fake_features, real_features, temperature,
                                      global_negatives=global_negatives)
