"""DAMSM word and sentence losses for dual-encoder pretraining (SPEC §4).

AttnGAN's Deep Attentional Multimodal Similarity Model, Xu et al. 2018,
https://arxiv.org/abs/1711.10485, §3.2; used by T2I_CL (Ye et al. 2021,
https://arxiv.org/abs/2107.02423) and SCL (https://arxiv.org/abs/2202.13148) to pretrain the
text and image encoders, with DAMSM's smoothing factors γ1 = 4, γ2 = 5, γ3 = 10.

Two forms of the word–region score are available (`form`):

- `attngan` (ATTNGAN_FORM): the released AttnGAN / T2I_CL code (`words_loss` and
  `func_attention`), see `attngan_word_region_similarity`;
- `xmcgan` (XMCGAN_FORM): XMC-GAN's L_word score, `word_contrastive.word_region_similarity`
  (cosine attention logits, one softmax over regions, 1/γ2 factor).

Both losses can drop the negatives that share the positive's class, as the released code does
with `class_ids` on CUB (`same_class_mask`).

Legend: B batch, N captions, R image regions, T tokens, K joint feature dimension. Float32
computation, float32 scalar results, means over this replica's examples.
"""

from __future__ import annotations

import tensorflow as tf

from xmcgan_tf.losses import contrastive
from xmcgan_tf.losses import word_contrastive

ATTNGAN_FORM = "attngan"
XMCGAN_FORM = "xmcgan"
FORMS = (ATTNGAN_FORM, XMCGAN_FORM)

# Cosine denominators are clamped here, as in the released code's `cosine_similarity`.
_COSINE_EPS = 1e-8


def check_form(form: str) -> str:
    """Returns `form` if it is one of FORMS, else raises ValueError naming the choices."""
    if form not in FORMS:
        raise ValueError(f"DAMSM form must be one of {FORMS}, got {form!r}.")
    return form


def same_class_mask(labels: tf.Tensor | None) -> tf.Tensor | None:
    """[B, B] bool, True where pair (i, j) is a negative to drop: i ≠ j, both labels ≥ 0, equal.

    The released AttnGAN / T2I_CL code sets such logits to −∞ when class ids exist (CUB);
    label −1 means "no class" and never masks. The diagonal (the positive) is never masked.

    Args:
      labels: [B] integer class ids, −1 for none; None for no masking.

    Returns:
      [B, B] bool tensor, or None when `labels` is None.
    """
    if labels is None:
        return None
    labels = tf.convert_to_tensor(labels)
    if labels.shape.rank is not None and labels.shape.rank != 1:
        raise ValueError(f"labels must have shape [B], got {labels.shape}.")
    labels = tf.cast(labels, tf.int64)
    known = labels >= 0
    same = tf.equal(labels[:, None], labels[None, :]) & known[:, None] & known[None, :]
    off_diagonal = tf.logical_not(tf.eye(tf.shape(labels)[0], dtype=tf.bool))
    return same & off_diagonal


def _masked_symmetric_cross_entropy(logits: tf.Tensor, labels: tf.Tensor | None) -> tf.Tensor:
    """Row CE + column CE of [B, B] logits (pairs on the diagonal), same-class pairs dropped."""
    mask = same_class_mask(labels)
    if mask is not None:
        logits = tf.where(mask, contrastive.MASKED_LOGIT, logits)
    return contrastive.symmetric_cross_entropy(logits, tf.transpose(logits))


def _cosine(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """cos(a, b) along the last axis, the norm product clamped at 1e-8."""
    dot = tf.reduce_sum(a * b, axis=-1)
    norms = tf.norm(a, axis=-1) * tf.norm(b, axis=-1)
    return dot / tf.maximum(norms, _COSINE_EPS)


def attngan_word_region_similarity(regions: tf.Tensor, words: tf.Tensor,
                                   word_mask: tf.Tensor, gamma1: float = 4.0,
                                   gamma2: float = 5.0) -> tf.Tensor:
    """AttnGAN's word–region score R(b, i) of every image b against every caption i.

    With v_r the raw region features of image b and e_t the raw word features of caption i
    (only its real words t):

      s_{r,t}  = v_r · e_t                                      (dot products, AttnGAN eq. 7)
      s̄_{r,t}  = exp(s_{r,t}) / Σ_{t'} exp(s_{r,t'})            (softmax over words, per region)
      α_{t,r}  = exp(γ1 s̄_{r,t}) / Σ_{r'} exp(γ1 s̄_{r',t})       (softmax over regions, per word)
      c_t      = Σ_r α_{t,r} v_r                                (region context of word t)
      R(b, i)  = log Σ_t exp(γ2 cos(c_t, e_t))

    AttnGAN eqs. (7)–(10), https://arxiv.org/abs/1711.10485, in the form of the released AttnGAN
    and T2I_CL code (`func_attention`, `words_loss`).

    Code vs paper: the paper's eq. (10) has a 1/γ2 factor in front of the log; the released code
    (followed here) omits it. The word softmax runs over the caption's real words only (the code
    slices them out); padding is also excluded from the log-sum-exp. Padded positions are zeroed
    before use, so their values, even non-finite ones, cannot reach the result.

    Args:
      regions: [B, R, K] region features (any float dtype).
      words: [N, T, K] word features.
      word_mask: [N, T], 1 on real tokens, 0 on padding. Every caption needs a real token.
      gamma1: γ1 > 0, sharpness of the attention over regions.
      gamma2: γ2 > 0, sharpness of the soft maximum over words.

    Returns:
      [B, N] float32 matrix R, row b = image b, column i = caption i.

    Raises:
      ValueError: on mismatched ranks or dimensions, or γ ≤ 0;
      tf.errors.InvalidArgumentError: (eager and non-XLA graphs) on a caption with no real token.
    """
    regions, words, real = word_contrastive.checked_word_inputs(regions, words, word_mask,
                                                                gamma1, gamma2)
    dots = tf.einsum("brk,ntk->bnrt", regions, words)  # [B, N, R, T]
    dots = tf.where(real[None, :, None, :], dots, contrastive.MASKED_LOGIT)
    word_weights = tf.nn.softmax(dots, axis=-1)  # over words, [B, N, R, T]
    attention = tf.nn.softmax(
        gamma1 * tf.transpose(word_weights, [0, 1, 3, 2]), axis=-1)  # over regions, [B, N, T, R]
    context = tf.einsum("bntr,brk->bntk", attention, regions)  # [B, N, T, K]
    cosine = _cosine(context, words[None])  # [B, N, T]
    scores = tf.where(real[None], gamma2 * cosine, contrastive.MASKED_LOGIT)  # [B, N, T]
    return tf.reduce_logsumexp(scores, axis=-1)


def damsm_word_loss(regions: tf.Tensor, words: tf.Tensor, word_mask: tf.Tensor,
                    gamma1: float = 4.0, gamma2: float = 5.0, gamma3: float = 10.0,
                    labels: tf.Tensor | None = None, form: str = ATTNGAN_FORM) -> tf.Tensor:
    """DAMSM word loss L_1^w + L_2^w.

    With S(b, i) the word–region score of image b and caption i (`form` `attngan`:
    `attngan_word_region_similarity`; `xmcgan`: `word_contrastive.word_region_similarity`) and
    logits L = γ3 · S, pair n on the diagonal:

      L^w = −(1/B) Σ_n log [exp(L_nn) / Σ_m exp(L_nm)] − (1/B) Σ_n log [exp(L_nn) / Σ_m exp(L_mn)],

    AttnGAN eqs. (9)–(13), https://arxiv.org/abs/1711.10485, γ1 = 4, γ2 = 5, γ3 = 10. With
    `labels`, the logits of pairs in `same_class_mask(labels)` are dropped from both softmaxes.

    Code vs paper: the paper sums over the batch, the AttnGAN code averages (followed here).
    The same-class masking is the released code's (class ids on CUB), not the paper's.

    Args:
      regions: [B, R, K] image region features.
      words: [B, T, K] word features of the matching captions.
      word_mask: [B, T], 1 on real tokens, 0 on padding.
      gamma1: γ1 > 0, attention sharpness.
      gamma2: γ2 > 0, word soft-maximum sharpness.
      gamma3: γ3 > 0, logit scale.
      labels: [B] class ids (−1 = none), or None: no masking.
      form: `attngan` or `xmcgan`, the word–region score.

    Returns:
      Scalar float32.

    Raises:
      ValueError: on an unknown form, mismatched shapes or γ ≤ 0.
    """
    check_form(form)
    contrastive.check_positive(gamma3, "gamma3")
    regions = contrastive.as_float32(regions, 3, "regions")
    words = contrastive.as_float32(words, 3, "words")
    if not regions.shape[:1].is_compatible_with(words.shape[:1]):
        raise ValueError(f"regions and words must pair row by row (same batch size), got "
                         f"{regions.shape} and {words.shape}.")
    if form == ATTNGAN_FORM:
        similarity = attngan_word_region_similarity(regions, words, word_mask, gamma1, gamma2)
    else:
        similarity = word_contrastive.word_region_similarity(
            regions, words, word_mask, gamma1, gamma2)
    return _masked_symmetric_cross_entropy(gamma3 * similarity, labels)  # [B, B] logits


def damsm_sentence_loss(image_features: tf.Tensor, sentence_features: tf.Tensor,
                        gamma3: float = 10.0, labels: tf.Tensor | None = None) -> tf.Tensor:
    """DAMSM sentence loss L_1^s + L_2^s.

    With R(Q, D) = cos(v̄_Q, ē_D) and logits γ3 · R:

      L^s = −(1/B) Σ_n log [exp(γ3 R_nn) / Σ_m exp(γ3 R_nm)]
            −(1/B) Σ_n log [exp(γ3 R_nn) / Σ_m exp(γ3 R_mn)],

    AttnGAN §3.2 (sentence-level DAMSM), https://arxiv.org/abs/1711.10485, γ3 = 10; without
    `labels` this is `contrastive.symmetric_contrastive_loss` with τ = 1/γ3. With `labels`, the
    logits of pairs in `same_class_mask(labels)` are dropped from both softmaxes. The same in
    both DAMSM forms.

    Code vs paper: batch means instead of the paper's sums, and the same-class masking, as in
    the released AttnGAN code.

    Args:
      image_features: [B, K] global image features v̄.
      sentence_features: [B, K] sentence features ē, paired row by row.
      gamma3: γ3 > 0, logit scale.
      labels: [B] class ids (−1 = none), or None: no masking.

    Returns:
      Scalar float32.
    """
    contrastive.check_positive(gamma3, "gamma3")
    if labels is None:
        return contrastive.symmetric_contrastive_loss(
            image_features, sentence_features, temperature=1.0 / gamma3)
    image_features = contrastive.as_float32(image_features, 2, "image_features")
    sentence_features = contrastive.as_float32(sentence_features, 2, "sentence_features")
    if not image_features.shape.is_compatible_with(sentence_features.shape):
        raise ValueError(f"image_features and sentence_features must have the same shape "
                         f"[B, K], got {image_features.shape} and {sentence_features.shape}.")
    logits = gamma3 * _cosine(image_features[:, None, :], sentence_features[None, :, :])
    return _masked_symmetric_cross_entropy(logits, labels)  # [B, B] logits
