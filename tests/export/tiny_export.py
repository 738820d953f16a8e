"""Tiny exports and a numpy reference for the export, serving, client and generate tests.

`TinyTextEncoder` stands in for `xmcgan_tf.text.encoder.TextEncoder` where the text encoder
does not matter (server, client, versioning): same call contract, a tensorflow_text tokenizer
(so loading still needs `import tensorflow_text`, as with the real one) and a small random
embedding table instead of BERT, so that an export takes seconds.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
import tensorflow_text

from xmcgan_tf.export import export_lib
from xmcgan_tf.export import serving_module
from xmcgan_tf.networks import generator as generator_lib
from xmcgan_tf.text import encoder as encoder_lib

MAX_TOKENS = 8
EMBEDDING_DIM = 16
Z_DIM = 8
IMAGE_SIZE = 64
_VOCAB_BUCKETS = 64
_CLS, _SEP, _PAD, _FIRST_WORD = 1, 2, 0, 3


class TinyTextEncoder(keras.layers.Layer):
    """captions [B] string -> sequence_output [B, T, D], pooled_output [B, D], input_mask
    [B, T] int32, num_tokens [B] int32: whitespace words hashed into a random table, wrapped in
    [CLS] ... [SEP] and truncated/padded to T."""

    def __init__(self, max_tokens: int = MAX_TOKENS, embedding_dim: int = EMBEDDING_DIM,
                 seed: int = 0, **kwargs):
        super().__init__(trainable=False, **kwargs)
        self.max_tokens = max_tokens
        self._embedding_dim = embedding_dim
        self._tokenizer = tensorflow_text.WhitespaceTokenizer()
        self.table = self.add_weight(
            shape=(_FIRST_WORD + _VOCAB_BUCKETS, embedding_dim), name="table", trainable=False,
            initializer=keras.initializers.RandomNormal(seed=seed))

    @property
    def embedding_dim(self) -> int:
        return self._embedding_dim

    def call(self, captions: tf.Tensor) -> dict[str, tf.Tensor]:
        words = self._tokenizer.tokenize(tf.strings.lower(captions))  # ragged [B, words]
        ids = tf.strings.to_hash_bucket_fast(words, _VOCAB_BUCKETS) + _FIRST_WORD
        ids = ids[:, :self.max_tokens - 2]
        batch = tf.shape(captions)[:1]
        ids = tf.concat([tf.fill(tf.concat([batch, [1]], 0), tf.constant(_CLS, tf.int64)), ids,
                         tf.fill(tf.concat([batch, [1]], 0), tf.constant(_SEP, tf.int64))], axis=1)
        num_tokens = tf.cast(ids.row_lengths(), tf.int32)
        dense = ids.to_tensor(default_value=_PAD, shape=[None, self.max_tokens])  # [B, T]
        sequence = tf.gather(self.table, dense)  # [B, T, D]
        input_mask = tf.sequence_mask(num_tokens, self.max_tokens, dtype=tf.int32)
        return {"sequence_output": sequence, "pooled_output": sequence[:, 0],
                "input_mask": input_mask, "num_tokens": num_tokens}


def tiny_generator(seed: int = 0, embedding_dim: int = EMBEDDING_DIM,
                   max_tokens: int = MAX_TOKENS) -> generator_lib.Generator:
    """A built 64 px Generator with gf=4 and z_dim=8, weights drawn from `seed`."""
    keras.utils.set_random_seed(seed)
    generator = generator_lib.Generator(image_size=IMAGE_SIZE, gf_dim=4, z_dim=Z_DIM,
                                        embedding_dim=embedding_dim, cond_size=16)
    generator(tf.zeros([1, Z_DIM]), tf.zeros([1, embedding_dim]),
              tf.zeros([1, max_tokens, embedding_dim]), tf.ones([1, max_tokens]), training=False)
    return generator


def tiny_module(seed: int = 0) -> serving_module.ServingModule:
    """ServingModule over TinyTextEncoder and tiny_generator(seed)."""
    return serving_module.ServingModule(tiny_generator(seed), TinyTextEncoder(),
                                        max_tokens=MAX_TOKENS, embedding_dim=EMBEDDING_DIM)


def write_tiny_export(export_dir: str, seed: int = 0,
                      version: int | None = None) -> tuple[int, str]:
    """Exports tiny_module(seed) as a new version of export_dir; returns (version, path)."""
    return export_lib.write_version(tiny_module(seed), export_dir, version=version)


def reference_images(generator, text_encoder, captions, seeds) -> np.ndarray:
    """What an export must return: `generator` on inputs computed here independently.

    Words and token counts come from `encoder.encode_captions`, the mask and the "official"
    sentence (sum over all T positions / num_tokens) from numpy, z from
    stateless_normal(seed=(s, 0), philox); images are clipped, scaled by 255 and rounded.

    Returns:
      [N, S, S, 3] uint8.
    """
    words, num_tokens = encoder_lib.encode_captions(text_encoder, captions)  # [N, T, D], [N]
    mask = (np.arange(words.shape[1])[None, :] < num_tokens[:, None]).astype(np.float32)
    sentence = words.sum(axis=1) / num_tokens[:, None]
    z_dim = generator.get_config()["z_dim"]
    z = np.stack([tf.random.stateless_normal([z_dim], seed=[s, 0], alg="philox").numpy()
                  for s in seeds])
    images = generator(tf.constant(z), tf.constant(sentence), tf.constant(words),
                       tf.constant(mask), training=False).numpy()
    return np.round(np.clip(images, 0.0, 1.0) * 255.0).astype(np.uint8)


def assert_same_pixels(actual: np.ndarray, expected: np.ndarray) -> None:
    """Equal up to float rounding between graph and eager kernels (at most 1 level, rarely)."""
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    assert actual.dtype == np.uint8
    diff = np.abs(actual.astype(np.int32) - expected.astype(np.int32))
    assert diff.max() <= 1
    assert (diff == 0).mean() > 0.999
