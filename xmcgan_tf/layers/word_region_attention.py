"""Masked region-to-word attention of the XMC-GAN generator (SPEC §2, step 4).

Each image region attends over the words of its caption. Regions r and words w are
L2-normalised, the attention logits are the cosine similarities scaled by a sharpness γ, padded
words are masked out, and the region context is the attention-weighted sum of the normalised
words:

    α_{i,t} = softmax_t(γ · cos(r_i, w_t))    over real words t,
    context_i = Σ_t α_{i,t} · w_t / ‖w_t‖.

Everything is computed in float32 (the layer does not autocast its inputs), so the softmax is
safe under `mixed_bfloat16`.

Legend: B batch, R regions, T tokens, D text dimension.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

# Added to the logits of padded words; exp() of it is exactly 0 in float32.
_MASK_LOGIT = -1e9


def l2_normalize(x: tf.Tensor, epsilon: float = 1e-12) -> tf.Tensor:
    """x / max(‖x‖, √ε) along the last axis; [..., D] float32 -> [..., D] float32."""
    square_sum = ops.sum(ops.square(x), axis=-1, keepdims=True)
    return x * ops.rsqrt(ops.maximum(square_sum, epsilon))


class WordRegionAttention(keras.layers.Layer):
    """Attention of each region over the real words of its caption, with sharpness γ.

    Args:
      sharpness: γ, the inverse softmax temperature on cosine similarities (γ_G = 15 in G).
      **kwargs: `keras.layers.Layer` arguments (name, dtype).
    """

    def __init__(self, sharpness: float = 15.0, **kwargs):
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        self.sharpness = sharpness

    def call(self, regions: tf.Tensor, words: tf.Tensor,
             word_mask: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Attends from regions to words.

        Args:
          regions: [B, R, D] region features (any float dtype).
          words: [B, T, D] word features, e.g. BERT sequence_output.
          word_mask: [B, T], 1 on real tokens and 0 on padding.

        Returns:
          context: [B, R, D] float32, attention-weighted sum of the L2-normalised words.
          alpha: [B, R, T] float32 attention weights; each row sums to 1 and is 0 on padding.
        """
        regions = l2_normalize(ops.cast(regions, "float32"))
        words = l2_normalize(ops.cast(words, "float32"))
        is_padding = 1.0 - ops.cast(word_mask, "float32")[:, None, :]  # [B, 1, T]
        logits = self.sharpness * ops.einsum("brd,btd->brt", regions, words)  # [B, R, T]
        alpha = ops.softmax(logits + _MASK_LOGIT * is_padding, axis=-1)  # [B, R, T]
        context = ops.einsum("brt,btd->brd", alpha, words)  # [B, R, D]
        return context, alpha

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(sharpness=self.sharpness)
        return config
