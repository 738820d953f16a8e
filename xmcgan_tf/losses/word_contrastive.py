"""XMC-GAN word–region contrastive loss L_word, AttnGAN-style (SPEC §3).

XMC-GAN, Zhang et al. 2021, https://arxiv.org/abs/2101.04702, §3 (L_word); the word–region
matching score is AttnGAN's DAMSM score, Xu et al. 2018, https://arxiv.org/abs/1711.10485,
eqs. (9)–(10).

Legend: B images, N captions (N = B for paired losses, G when gathered across replicas),
R = H·W image regions, T tokens per caption (padded), D feature dimension. All computations are
in float32; inputs may be bfloat16.
"""

from __future__ import annotations

import tensorflow as tf

from xmcgan_tf.losses import contrastive
from xmcgan_tf.losses import distribution


def checked_word_inputs(regions: tf.Tensor, words: tf.Tensor, word_mask: tf.Tensor,
                        gamma1: float, gamma2: float) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Validates the inputs of a word–region score and zeroes the padded words.

    Args:
      regions: [B, R, D] region features (any float dtype).
      words: [N, T, D] word features.
      word_mask: [N, T], 1 on real tokens and 0 on padding (float, int or bool).
      gamma1: γ1, must be > 0.
      gamma2: γ2, must be > 0.

    Returns:
      (regions [B, R, D] float32, words [N, T, D] float32 with padded positions 0,
      real [N, T] bool).

    Raises:
      ValueError: on mismatched ranks or dimensions, or γ ≤ 0;
      tf.errors.InvalidArgumentError: (eager and non-XLA graphs) on a caption with no real token.
    """
    regions = contrastive.as_float32(regions, 3, "regions")
    words = contrastive.as_float32(words, 3, "words")
    word_mask = contrastive.as_float32(word_mask, 2, "word_mask")
    contrastive.check_positive(gamma1, "gamma1")
    contrastive.check_positive(gamma2, "gamma2")
    if not regions.shape[-1:].is_compatible_with(words.shape[-1:]):
        raise ValueError(f"regions [B, R, D] and words [N, T, D] need the same D, got "
                         f"{regions.shape} and {words.shape}.")
    if not word_mask.shape.is_compatible_with(words.shape[:2]):
        raise ValueError(f"word_mask must have shape [N, T] = {words.shape[:2]}, "
                         f"got {word_mask.shape}.")
    real = word_mask > 0  # [N, T]
    check = tf.debugging.assert_positive(
        tf.reduce_sum(tf.cast(real, tf.int32), axis=-1),
        message="word_mask: every caption needs at least one real token")
    with tf.control_dependencies([check]):
        words = tf.where(real[..., None], words, 0.0)
    return regions, words, real


def word_region_similarity(regions: tf.Tensor, words: tf.Tensor, word_mask: tf.Tensor,
                           gamma1: float = 5.0, gamma2: float = 5.0) -> tf.Tensor:
    """Word–region matching score S(b, i) of every image b against every caption i.

    With r̂_b,k = r_b,k/‖r_b,k‖ and ŵ_i,t = w_i,t/‖w_i,t‖:

      α_{b,i,t,k} = exp(γ1 cos(r̂_b,k, ŵ_i,t)) / Σ_{k'} exp(γ1 cos(r̂_b,k', ŵ_i,t))
      c_{b,i,t}   = Σ_k α_{b,i,t,k} r̂_b,k
      S(b, i)     = (1/γ2) log Σ_{t : mask_i,t = 1} exp(γ2 cos(w_i,t, c_{b,i,t}))

    AttnGAN eqs. (9)–(10) (https://arxiv.org/abs/1711.10485) as used by XMC-GAN's L_word
    (https://arxiv.org/abs/2101.04702).

    Code vs paper: AttnGAN's attention first normalises the raw dot products over words and then
    applies γ1 and a softmax over regions, on unnormalised features; XMC-GAN's released code
    (followed here, SPEC §3) applies γ1 to cosines and takes one softmax over regions. The
    1/γ2 factor is the paper's (and XMC-GAN's code's); AttnGAN's code omits it. Padding tokens
    are excluded from the log-sum-exp (the released code masks them there too; its attention
    mask adds a constant over regions and so has no effect). Padded positions are zeroed before
    use, so their values, even non-finite ones, cannot reach the result.

    Args:
      regions: [B, R, D] region features (any float dtype).
      words: [N, T, D] word features.
      word_mask: [N, T], 1 on real tokens and 0 on padding (float, int or bool). Every caption
        needs at least one real token.
      gamma1: γ1 > 0, sharpness of the attention over regions.
      gamma2: γ2 > 0, sharpness of the soft maximum over words.

    Returns:
      [B, N] float32 matrix S, row b = image b, column i = caption i.

    Raises:
      ValueError: on mismatched ranks or dimensions, or γ ≤ 0;
      tf.errors.InvalidArgumentError: (eager and non-XLA graphs) on a caption with no real token.
    """
    regions, words, real = checked_word_inputs(regions, words, word_mask, gamma1, gamma2)
    region_unit = tf.math.l2_normalize(regions, axis=-1)  # [B, R, D]
    word_unit = tf.math.l2_normalize(words, axis=-1)  # [N, T, D]
    attention = tf.nn.softmax(
        gamma1 * tf.einsum("brd,ntd->bntr", region_unit, word_unit), axis=-1)  # [B, N, T, R]
    context = tf.einsum("bntr,brd->bntd", attention, region_unit)  # [B, N, T, D]
    cosine = tf.reduce_sum(
        word_unit[None] * tf.math.l2_normalize(context, axis=-1), axis=-1)  # [B, N, T]
    scores = tf.where(real[None], gamma2 * cosine, contrastive.MASKED_LOGIT)  # [B, N, T]
    return tf.reduce_logsumexp(scores, axis=-1) / gamma2


def word_contrastive_loss(regions: tf.Tensor, words: tf.Tensor, word_mask: tf.Tensor,
                          gamma1: float = 5.0, gamma2: float = 5.0, gamma3: float = 50.0,
                          global_negatives: bool = False) -> tf.Tensor:
    """XMC-GAN word–region contrastive loss L_word.

    With S from `word_region_similarity` and logits L = γ3 · S (pair n on the diagonal):

      L_word = −(1/B) Σ_n log [exp(L_nn) / Σ_m exp(L_nm)]
               −(1/B) Σ_n log [exp(L_nn) / Σ_m exp(L_mn)].

    XMC-GAN §3 (https://arxiv.org/abs/2101.04702), γ1 = 5, γ2 = 5, γ3 = 50.

    Code vs paper: the paper writes the image→text direction only, with S/τ; the released code
    (followed, SPEC §3) uses γ3 · S and adds both directions, each a batch mean.

    With `global_negatives=True` inside a replica context with more than one replica, regions,
    words and masks are all-gathered: local images are scored against all G captions and local
    captions against all G images, labels offset by `replica_id · B`; averaged over replicas
    this equals the loss on the whole global batch (same B on every replica required).

    Args:
      regions: [B, R, D] region features of the images (any float dtype).
      words: [B, T, D] word features of the matching captions, row n pairs with image n.
      word_mask: [B, T], 1 on real tokens and 0 on padding.
      gamma1: γ1 > 0, attention sharpness.
      gamma2: γ2 > 0, word soft-maximum sharpness.
      gamma3: γ3 > 0, logit scale.
      global_negatives: use the other replicas' examples as extra negatives.

    Returns:
      Scalar float32, the mean over this replica's B pairs.

    Raises:
      ValueError: on mismatched shapes (including B ≠ N) or γ ≤ 0.
    """
    regions = contrastive.as_float32(regions, 3, "regions")
    words = contrastive.as_float32(words, 3, "words")
    word_mask = contrastive.as_float32(word_mask, 2, "word_mask")
    contrastive.check_positive(gamma3, "gamma3")
    if not regions.shape[:1].is_compatible_with(words.shape[:1]):
        raise ValueError(f"regions and words must pair row by row (same batch size), got "
                         f"{regions.shape} and {words.shape}.")
    if global_negatives:
        all_regions = distribution.gather_replicas(regions)  # [G, R, D]
        all_words = distribution.gather_replicas(words)  # [G, T, D]
        all_mask = distribution.gather_replicas(word_mask)  # [G, T]
        label_offset = distribution.replica_id() * tf.shape(regions)[0]
        row_logits = gamma3 * word_region_similarity(
            regions, all_words, all_mask, gamma1, gamma2)  # [B, G]
        column_logits = gamma3 * tf.transpose(word_region_similarity(
            all_regions, words, word_mask, gamma1, gamma2))  # [B, G]
    else:
        row_logits = gamma3 * word_region_similarity(
            regions, words, word_mask, gamma1, gamma2)  # [B, B]
        column_logits = tf.transpose(row_logits)
        label_offset = 0
    return contrastive.symmetric_cross_entropy(row_logits, column_logits, label_offset)
