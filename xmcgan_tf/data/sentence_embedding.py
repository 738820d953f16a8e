"""Sentence embeddings derived at read time from stored word embeddings (SPEC §1.1).

Legend: T tokens per caption (including [CLS] and [SEP], padded), D text-encoder dimension;
`...` any leading batch dimensions.

Only BERT's `sequence_output` is stored in the records; the sentence vector is computed from
it by one of three methods:

| method        | formula                                                   |
|---------------|-----------------------------------------------------------|
| `official`    | sum_{t < T} w_t / n  (all T positions, padding included)  |
| `masked_mean` | sum_{t < n} w_t / n  (real tokens only)                   |
| `cls`         | w_0  (the [CLS] position)                                 |

where n = num_tokens. `official` is what the released XMC-GAN code computes: it sums every
position of the padded sequence and divides by the number of real tokens.
"""

from __future__ import annotations

import tensorflow as tf

OFFICIAL = "official"
MASKED_MEAN = "masked_mean"
CLS = "cls"
METHODS = (OFFICIAL, MASKED_MEAN, CLS)


def check_method(method: str) -> None:
    """Raises ValueError when `method` is not one of `METHODS`."""
    if method not in METHODS:
        raise ValueError(f"unknown sentence embedding method {method!r}; allowed: {list(METHODS)}")


def word_mask(num_tokens: tf.Tensor, max_tokens: int) -> tf.Tensor:
    """1.0 on real tokens.

    Args:
      num_tokens: [...] int, real tokens per caption including [CLS] and [SEP].
      max_tokens: T.

    Returns:
      [..., T] float32, 1.0 at positions t < num_tokens, else 0.0.
    """
    return tf.sequence_mask(num_tokens, max_tokens, dtype=tf.float32)


def sentence_embedding(words: tf.Tensor, num_tokens: tf.Tensor,
                       method: str = OFFICIAL) -> tf.Tensor:
    """Sentence vector of a caption from its word embeddings.

    Args:
      words: [..., T, D] float32, BERT `sequence_output` of the padded caption.
      num_tokens: [...] int, real tokens per caption including [CLS] and [SEP] (>= 1; a count
        of 0 is treated as 1 so that padding never divides by zero).
      method: one of `METHODS` (see the module docstring).

    Returns:
      [..., D] float32.

    Raises:
      ValueError: unknown `method`.
    """
    check_method(method)
    words = tf.convert_to_tensor(words, tf.float32)
    if method == CLS:
        return words[..., 0, :]
    count = tf.maximum(tf.cast(num_tokens, tf.float32), 1.0)[..., tf.newaxis]  # [..., 1]
    if method == OFFICIAL:
        return tf.reduce_sum(words, axis=-2) / count
    mask = word_mask(num_tokens, tf.shape(words)[-2])[..., tf.newaxis]  # [..., T, 1]
    return tf.reduce_sum(words * mask, axis=-2) / count
