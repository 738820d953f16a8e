"""XMC-GAN generator (SPEC §2; Zhang et al. 2021, arXiv:2101.04702, Fig. 3).

    1. c = concat(Dense(z_dim)(sentence), z)                       global condition [B, 2·z_dim]
    2. x = Dense(4·4·16gf)(z) → [B, 4, 4, 16gf]                    stem, z only (released);
       with `conditioned_stem`, Dense(4·4·16gf)(c): the caption sets the coarse layout
    3. GenBlocks (conditional BN from c) up to cond_size × cond_size
    4. regions = Conv1×1(D)(x [+ (row, column) channels]) → [B, R, D];
       α = softmax over words of γ_G·cos(region, word), padding masked;
       context = α · normalised words → [B, cond, cond, D];
       spatial condition = concat(context, tile(c))
    5. GenSpatialBlocks (per-pixel BN modulation from the spatial condition) up to S
    6. head: spatial-BN → ReLU → conv3(3) → tanh → (x + 1)/2, images in [0, 1]

No spectral normalisation; Glorot-normal kernels; ReLU; nearest ×2 upsampling; BatchNorm
momentum 0.9, ε 1e-5, modulated as BN(x)·(1+γ)+β.

Legend: B batch, S image size, T tokens, D text (BERT) dimension, R = cond_size² regions,
gf generator width.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from xmcgan_tf.layers import conditional_batch_norm
from xmcgan_tf.layers import coordinates
from xmcgan_tf.layers import shape_checks
from xmcgan_tf.layers import word_region_attention
from xmcgan_tf.networks import generator_blocks

# Spatial size of the stem output.
STEM_SIZE = 4

# Output channels (× gf) of the up-blocks, keyed by image size; block i maps
# 4·2^i → 4·2^(i+1) pixels. Blocks ending at or below cond_size are GenBlocks, the rest
# GenSpatialBlocks; with cond_size 16:
BLOCK_CHANNELS = {
    64: (16, 8, 4, 2),  # GenBlocks 4→8→16 | GenSpatialBlocks 16→32→64
    128: (16, 8, 4, 2, 1),  # GenBlocks 4→8→16 | GenSpatialBlocks 16→32→64→128
    256: (16, 8, 8, 4, 2, 1),  # GenBlocks 4→8→16 | GenSpatialBlocks 16→32→64→128→256
}


def _block_channels(image_size: int) -> tuple[int, ...]:
    if image_size not in BLOCK_CHANNELS:
        raise ValueError(f"Generator: image_size {image_size} is not supported; allowed sizes "
                         f"are {sorted(BLOCK_CHANNELS)}")
    return BLOCK_CHANNELS[image_size]


class Generator(keras.Model):
    """Generates [0, 1] images from noise, a sentence embedding and word embeddings.

    Args:
      image_size: S, one of `BLOCK_CHANNELS` (64, 128, 256).
      gf_dim: generator width gf (96 in the paper).
      z_dim: noise dimension; the sentence is also projected to z_dim.
      embedding_dim: D, the dimension of the word and sentence embeddings.
      attention_sharpness: γ_G of the word-region attention.
      cond_size: spatial size at which the word-region attention runs (a block output size,
        8 … S).
      conditioned_stem: the stem reads the global condition c = [Dense(sentence), z] instead of
        z alone (the released stem). The released layout comes from z only: the caption reaches
        the coarse features through the channel-wise batch-norm modulation of the GenBlocks and
        the word attention, which has no notion of place, so a caption naming a place ("in the
        top left") cannot move the objects (BENCHMARKS.md, "Fidelity"). A stem fed c maps the
        caption to a 4×4 layout directly.
      region_coordinates: append each region's (row, column) to the features the attention
        queries are projected from, so that a region can attend to the words naming its place
        ("left", "top"); the released queries carry no place.
      **kwargs: `keras.Model` arguments (name, dtype).

    Raises:
      ValueError: unsupported image_size or cond_size.
    """

    def __init__(self, image_size: int = 128, gf_dim: int = 96, z_dim: int = 128,
                 embedding_dim: int = 768, attention_sharpness: float = 15.0,
                 cond_size: int = 16, conditioned_stem: bool = False,
                 region_coordinates: bool = False, **kwargs):
        super().__init__(**kwargs)
        channels = _block_channels(image_size)
        block_sizes = [STEM_SIZE * 2 ** (i + 1) for i in range(len(channels))]
        if cond_size not in block_sizes:
            raise ValueError(f"Generator: cond_size {cond_size} is not a block output size of "
                             f"a {image_size} px generator; allowed {block_sizes}")
        self.image_size = image_size
        self.gf_dim = gf_dim
        self.z_dim = z_dim
        self.embedding_dim = embedding_dim
        self.attention_sharpness = attention_sharpness
        self.cond_size = cond_size
        self.conditioned_stem = bool(conditioned_stem)
        self.region_coordinates = bool(region_coordinates)
        self._stem_channels = channels[0] * gf_dim
        num_global_blocks = block_sizes.index(cond_size) + 1
        layer_args = dict(kernel_initializer="glorot_normal", dtype=self.dtype_policy)

        # Step 1: global condition.
        self.sentence_projection = keras.layers.Dense(z_dim, name="sentence_projection",
                                                      **layer_args)
        # Step 2: stem.
        self.stem = keras.layers.Dense(STEM_SIZE * STEM_SIZE * self._stem_channels,
                                       name="stem", **layer_args)
        # Step 3: GenBlocks.
        self.global_blocks = [
            generator_blocks.GenBlock(gf_dim * multiplier, name=f"gen_block{i}",
                                      dtype=self.dtype_policy)
            for i, multiplier in enumerate(channels[:num_global_blocks])
        ]
        # Step 4: word-region attention.
        self.region_projection = keras.layers.Conv2D(embedding_dim, 1, name="region_projection",
                                                     **layer_args)
        self.word_attention = word_region_attention.WordRegionAttention(
            attention_sharpness, name="word_attention", dtype=self.dtype_policy)
        # Step 5: GenSpatialBlocks.
        self.spatial_blocks = [
            generator_blocks.GenSpatialBlock(gf_dim * multiplier, name=f"gen_spatial_block{i}",
                                             dtype=self.dtype_policy)
            for i, multiplier in enumerate(channels[num_global_blocks:])
        ]
        # Step 6: head.
        self.head_norm = conditional_batch_norm.SpatialConditionalBatchNorm(
            name="head_norm", dtype=self.dtype_policy)
        self.head_conv = keras.layers.Conv2D(3, 3, padding="same", name="head_conv",
                                             **layer_args)

    def call(self, z: tf.Tensor, sentence: tf.Tensor, words: tf.Tensor, word_mask: tf.Tensor,
             training: bool | None = None) -> tf.Tensor:
        """Generates images.

        Args:
          z: [B, z_dim] float32 noise, N(0, I).
          sentence: [B, D] float32 sentence embedding.
          words: [B, T, D] float32 word embeddings (BERT sequence_output).
          word_mask: [B, T] float32, 1 on real tokens (incl. [CLS]/[SEP]), 0 on padding.
          training: BatchNorm mode (batch statistics when True).

        Returns:
          [B, S, S, 3] float32 images in [0, 1].
        """
        shape_checks.assert_shape(z, [None, self.z_dim], "Generator input z")
        shape_checks.assert_shape(sentence, [None, self.embedding_dim],
                                  "Generator input sentence")
        shape_checks.assert_shape(words, [None, None, self.embedding_dim],
                                  "Generator input words")
        shape_checks.assert_shape(word_mask, [None, words.shape[1]], "Generator input word_mask")
        size = self.cond_size

        # 1. c = concat(Dense(z_dim)(sentence), z).
        condition = ops.concatenate([self.sentence_projection(sentence),
                                     ops.cast(z, self.compute_dtype)], axis=-1)  # [B, 2·z_dim]

        # 2. Stem from z alone (released) or from c.
        stem_input = condition if self.conditioned_stem else z
        x = ops.reshape(self.stem(stem_input), (-1, STEM_SIZE, STEM_SIZE, self._stem_channels))

        # 3. GenBlocks with conditional BN from c, up to cond_size.
        for block in self.global_blocks:
            x = block(x, condition, training=training)
        shape_checks.assert_shape(x, [None, size, size, None], "Generator features at cond_size")

        # 4. Word-region attention → spatial condition.
        query_input = coordinates.with_coordinates(x) if self.region_coordinates else x
        regions = self.region_projection(query_input)  # [B, cond, cond, D]
        regions = ops.reshape(regions, (-1, size * size, self.embedding_dim))  # [B, R, D]
        context, _ = self.word_attention(regions, words, word_mask)  # [B, R, D] float32
        context = ops.reshape(ops.cast(context, self.compute_dtype),
                              (-1, size, size, self.embedding_dim))  # [B, cond, cond, D]
        tiled_condition = ops.tile(condition[:, None, None, :], (1, size, size, 1))
        spatial_condition = ops.concatenate([context, tiled_condition], axis=-1)

        # 5. GenSpatialBlocks: attentional self-modulation, up to S.
        for block in self.spatial_blocks:
            x = block(x, spatial_condition, training=training)

        # 6. Head.
        x = ops.relu(self.head_norm(x, spatial_condition, training=training))
        x = ops.tanh(ops.cast(self.head_conv(x), "float32"))
        images = (x + 1.0) / 2.0
        shape_checks.assert_shape(images, [None, self.image_size, self.image_size, 3],
                                  "Generator output")
        return images

    def example_inputs(self, max_tokens: int, batch_size: int = 1) -> tuple[tf.Tensor, ...]:
        """All-zero inputs (z, sentence, words, word_mask) of this generator's sizes: calling
        the generator on them in inference mode creates every variable without touching the
        batch-norm statistics.

        Args:
          max_tokens: T.
          batch_size: B.

        Returns:
          z [B, z_dim] float32, sentence [B, D] float32, words [B, T, D] float32 and
          word_mask [B, T] float32 (all ones, so every token counts as real).
        """
        return (tf.zeros([batch_size, self.z_dim]), tf.zeros([batch_size, self.embedding_dim]),
                tf.zeros([batch_size, max_tokens, self.embedding_dim]),
                tf.ones([batch_size, max_tokens]))

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(image_size=self.image_size, gf_dim=self.gf_dim, z_dim=self.z_dim,
                      embedding_dim=self.embedding_dim,
                      attention_sharpness=self.attention_sharpness, cond_size=self.cond_size,
                      conditioned_stem=self.conditioned_stem,
                      region_coordinates=self.region_coordinates)
        return config
