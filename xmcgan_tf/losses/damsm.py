"""DAMSM word and sentence losses for dual-encoder pretraining (SPEC §4).

AttnGAN's Deep Attentional Multimodal Similarity Model, Xu et al. 2018,
https://arxiv.org/abs/1711.10485, §3.2; used by T2I_CL (Ye et al. 2021,
https://arxiv.org/abs/2107.02423) and SCL (https://arxiv.org/abs/2202.13148) to pretrain the
text and image encoders. Both losses are the symmetric contrastive losses of
`word_contrastive` and `contrastive` with DAMSM's smoothing factors γ1 = 4, γ2 = 5, γ3 = 10.

Legend: B batch, R image regions, T tokens, K joint feature dimension. Float32 computation,
float32 scalar results, means over this replica's examples.
"""

from __future__ import annotations

import tensorflow as tf

from xmcgan_tf.losses import contrastive
from xmcgan_tf.losses import word_contrastive


def damsm_word_loss(regions: tf.Tensor, words: tf.Tensor, word_mask: tf.Tensor,
                    gamma1: float = 4.0, gamma2: float = 5.0, gamma3: float = 10.0) -> tf.Tensor:
    """DAMSM word loss L_1^w + L_2^w.

    With S(b, i) the word–region score of `word_contrastive.word_region_similarity` and
    P(D_i | Q_j) = exp(γ3 S(Q_j, D_i)) / Σ_k exp(γ3 S(Q_j, D_k)):

      L^w = −(1/B) Σ_n log P(D_n | Q_n) − (1/B) Σ_n log P(Q_n | D_n),

    AttnGAN eqs. (9)–(13), https://arxiv.org/abs/1711.10485, γ1 = 4, γ2 = 5, γ3 = 10.

    Code vs paper: the paper sums over the batch, the AttnGAN code averages (followed here).
    AttnGAN's attention and its score without the 1/γ2 factor differ from XMC-GAN's form used
    here (see `word_region_similarity`). AttnGAN's code also drops negatives that share the
    positive's class id on CUB; here every other example is a negative.

    Args:
      regions: [B, R, K] image region features.
      words: [B, T, K] word features of the matching captions.
      word_mask: [B, T], 1 on real tokens, 0 on padding.
      gamma1: γ1 > 0, attention sharpness.
      gamma2: γ2 > 0, word soft-maximum sharpness.
      gamma3: γ3 > 0, logit scale.

    Returns:
      Scalar float32.
    """
    return word_contrastive.word_contrastive_loss(
        regions, words, word_mask, gamma1=gamma1, gamma2=gamma2, gamma3=gamma3)


def damsm_sentence_loss(image_features: tf.Tensor, sentence_features: tf.Tensor,
                        gamma3: float = 10.0) -> tf.Tensor:
    """DAMSM sentence loss L_1^s + L_2^s.

    With R(Q, D) = cos(v̄_Q, ē_D) and logits γ3 · R:

      L^s = −(1/B) Σ_n log [exp(γ3 R_nn) / Σ_m exp(γ3 R_nm)]
            −(1/B) Σ_n log [exp(γ3 R_nn) / Σ_m exp(γ3 R_mn)],

    AttnGAN §3.2 (sentence-level DAMSM), https://arxiv.org/abs/1711.10485, γ3 = 10; this is
    `contrastive.symmetric_contrastive_loss` with τ = 1/γ3.

    Code vs paper: batch means instead of the paper's sums, as in the AttnGAN code.

    Args:
      image_features: [B, K] global image features v̄.
      sentence_features: [B, K] sentence features ē, paired row by row.
      gamma3: γ3 > 0, logit scale.

    Returns:
      Scalar float32.
    """
    contrastive.check_positive(gamma3, "gamma3")
    return contrastive.symmetric_contrastive_loss(
        image_features, sentence_features, temperature=1.0 / gamma3)
