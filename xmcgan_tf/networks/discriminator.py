"""XMC-GAN discriminator (SPEC §2; Zhang et al. 2021, arXiv:2101.04702, Fig. 3).

    x = OptimizedBlock(df)(images [+ (row, column) channels]), then DiscBlocks
        (channel / downsample tables below)
    regions = SN Conv1×1(D)(block output at cond_size × cond_size) → [B, R, D]
    x_pool = Σ_{h,w} ReLU(x) of the last block                    [B, C] (a sum, not a mean)
    e = SN Dense(C)(sentence)                                     [B, C]
    logit = SN Dense(1)(x_pool) + Σ_c x_pool ⊙ e                   projection discriminator

D takes the images in [0, 1] as they are (the released code does not rescale them); with
`centered_input` it sees 2·images − 1 in [−1, 1] instead. The released input puts a step of
about the mean intensity at every image border (zero padding around values near 0.4), whose
features are the same for real and fake images; on a small, briefly trained D they dominate the
summed features (BENCHMARKS.md, "Fidelity"). Spectral normalisation (one power iteration)
wraps every convolution and dense layer (`spectral_norm`, on as released); there is no
normalisation layer. The caller concatenates real and fake images (and their sentences) into
one batch so both go through D in one pass. D returns features, never losses: x_pool and e
feed L_sent and L_img, the regions feed L_word (`xmcgan_tf.losses`).

Legend: B batch, S image size, D text (BERT) dimension, R = cond_size² regions, C channels of
the last block, df discriminator width.
"""

from __future__ import annotations

from typing import NamedTuple

import keras
import tensorflow as tf
from keras import ops

from xmcgan_tf.layers import coordinates
from xmcgan_tf.layers import shape_checks
from xmcgan_tf.networks import discriminator_blocks

# Output channels (× df) of the optimized (first) block: df, as in the released code.
OPTIMIZED_BLOCK_CHANNELS = 1

# Output channels (× df) and downsampling of the DiscBlocks that follow, keyed by image size.
BLOCK_CHANNELS = {
    64: (2, 4, 8, 16),
    128: (2, 4, 8, 16, 16),
    256: (2, 4, 8, 8, 16, 16),
}
BLOCK_DOWNSAMPLE = {
    64: (True, True, True, False),  # 32 → 16 → 8 → 4 → 4
    128: (True, True, True, True, False),  # 64 → 32 → 16 → 8 → 4 → 4
    256: (True, True, True, True, True, False),  # 128 → 64 → 32 → 16 → 8 → 4 → 4
}


class DiscriminatorOutputs(NamedTuple):
    """Discriminator outputs, all float32.

    Attributes:
      logits: [B] real/fake logits.
      global_features: [B, C] x_pool, the ReLU features of the last block summed over space.
      region_features: [B, R, D] region features at cond_size × cond_size.
      sentence_projection: [B, C] e = SN Dense(C)(sentence).
      negative_projection: [N, C] the same projection of the extra negative sentences given to
        the call (L_sent's caption bank); [0, C] without them.
    """

    logits: tf.Tensor
    global_features: tf.Tensor
    region_features: tf.Tensor
    sentence_projection: tf.Tensor
    negative_projection: tf.Tensor


class Discriminator(keras.Model):
    """Projection discriminator with region and global features for the contrastive losses.

    Args:
      image_size: S, one of `BLOCK_CHANNELS` (64, 128, 256).
      df_dim: discriminator width df (96 in the paper).
      embedding_dim: D, the dimension of the sentence embedding and of the region features.
      cond_size: spatial size of the block output that gives the region features.
      centered_input: rescale the [0, 1] images to [−1, 1] before the first block (the released
        code does not).
      coordinate_channels: append each pixel's (row, column) in [−1, 1] to the image as two more
        input channels (CoordConv, Liu et al. 2018). The released D sums its last features
        over space, so where an object is survives only through the zero padding: on the
        synthetic scenes its logit does not prefer a scene to its left-right mirror image when
        the caption names left or right (BENCHMARKS.md, "Fidelity"). Off: the released input.
      spectral_norm: spectrally normalise every convolution and dense layer (the released D).
        False uses the raw kernels, to measure what the constraint costs or buys (on the
        synthetic scenes: nothing within a CPU budget; BENCHMARKS.md, "What holds D's shape
        checking back").
      **kwargs: `keras.Model` arguments (name, dtype).

    Raises:
      ValueError: unsupported image_size or cond_size.
    """

    def __init__(self, image_size: int = 128, df_dim: int = 96, embedding_dim: int = 768,
                 cond_size: int = 16, centered_input: bool = False,
                 coordinate_channels: bool = False, spectral_norm: bool = True, **kwargs):
        super().__init__(**kwargs)
        if image_size not in BLOCK_CHANNELS:
            raise ValueError(f"Discriminator: image_size {image_size} is not supported; "
                             f"allowed sizes are {sorted(BLOCK_CHANNELS)}")
        channels = BLOCK_CHANNELS[image_size]
        downsample = BLOCK_DOWNSAMPLE[image_size]
        # Output size of the optimized block (index 0) and of each DiscBlock (1, 2, ...).
        sizes = [image_size // 2]
        for down in downsample:
            sizes.append(sizes[-1] // 2 if down else sizes[-1])
        if cond_size not in sizes:
            raise ValueError(f"Discriminator: cond_size {cond_size} is not a block output size "
                             f"of a {image_size} px discriminator; allowed "
                             f"{sorted(set(sizes))}")
        self.image_size = image_size
        self.df_dim = df_dim
        self.embedding_dim = embedding_dim
        self.cond_size = cond_size
        self.centered_input = bool(centered_input)
        self.coordinate_channels = bool(coordinate_channels)
        self.spectral_norm = bool(spectral_norm)
        self._region_block = len(sizes) - 1 - sizes[::-1].index(cond_size)
        self._feature_channels = df_dim * channels[-1]

        self.optimized_block = discriminator_blocks.DiscOptimizedBlock(
            df_dim * OPTIMIZED_BLOCK_CHANNELS, spectral_norm=self.spectral_norm,
            name="optimized_block", dtype=self.dtype_policy)
        self.blocks = [
            discriminator_blocks.DiscBlock(df_dim * multiplier, downsample=down,
                                           spectral_norm=self.spectral_norm,
                                           name=f"disc_block{i + 1}", dtype=self.dtype_policy)
            for i, (multiplier, down) in enumerate(zip(channels, downsample))
        ]
        self.region_projection = discriminator_blocks.spectral_conv(
            embedding_dim, 1, "region_projection", dtype=self.dtype_policy,
            normalize=self.spectral_norm)
        # The heads see float32 features and give the float32 outputs.
        self.logit = discriminator_blocks.spectral_dense(1, "logit", dtype="float32",
                                                         normalize=self.spectral_norm)
        self.sentence_projection = discriminator_blocks.spectral_dense(
            self._feature_channels, "sentence_projection", dtype="float32",
            normalize=self.spectral_norm)

    def call(self, images: tf.Tensor, sentence: tf.Tensor, training: bool | None = None,
             negative_sentences: tf.Tensor | None = None) -> DiscriminatorOutputs:
        """Scores images against sentences.

        Args:
          images: [B, S, S, 3] float32 in [0, 1] (real and fake concatenated by the caller).
          sentence: [B, D] float32 sentence embeddings paired with `images`.
          training: when True, the spectral-norm power iteration updates its vectors.
          negative_sentences: optional [N, D] float32 sentence embeddings projected with the
            same e (one spectral-norm call for both) into `negative_projection`.

        Returns:
          DiscriminatorOutputs(logits [B], global_features [B, C], region_features [B, R, D],
          sentence_projection [B, C], negative_projection [N, C] ([0, C] without
          `negative_sentences`)), all float32.
        """
        size = self.image_size
        shape_checks.assert_shape(images, [None, size, size, 3], "Discriminator input images")
        shape_checks.assert_shape(sentence, [images.shape[0], self.embedding_dim],
                                  "Discriminator input sentence")

        x = images * 2.0 - 1.0 if self.centered_input else images
        if self.coordinate_channels:
            x = coordinates.with_coordinates(x)
        x = self.optimized_block(x, training=training)
        region_input = x
        for index, block in enumerate(self.blocks, start=1):
            x = block(x, training=training)
            if index == self._region_block:
                region_input = x

        # Region features for L_word.
        regions = self.region_projection(region_input, training=training)  # [B, cond, cond, D]
        regions = ops.reshape(ops.cast(regions, "float32"),
                              (-1, self.cond_size * self.cond_size, self.embedding_dim))

        # Global feature x_pool: a sum over space of the last block's ReLU features.
        x_pool = ops.sum(ops.relu(ops.cast(x, "float32")), axis=(1, 2))  # [B, C]

        # Projection logit.
        if negative_sentences is None:
            negative_sentences = ops.zeros([0, self.embedding_dim], sentence.dtype)
        shape_checks.assert_shape(negative_sentences, [None, self.embedding_dim],
                                  "Discriminator input negative_sentences")
        projected = self.sentence_projection(
            ops.concatenate([sentence, ops.cast(negative_sentences, sentence.dtype)], axis=0),
            training=training)  # [B + N, C]
        num_paired = ops.shape(sentence)[0]
        e, negative_projection = projected[:num_paired], projected[num_paired:]
        logits = self.logit(x_pool, training=training)[:, 0] + ops.sum(x_pool * e, axis=-1)
        return DiscriminatorOutputs(logits=logits, global_features=x_pool,
                                    region_features=regions, sentence_projection=e,
                                    negative_projection=negative_projection)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(image_size=self.image_size, df_dim=self.df_dim,
                      embedding_dim=self.embedding_dim, cond_size=self.cond_size,
                      centered_input=self.centered_input,
                      coordinate_channels=self.coordinate_channels,
                      spectral_norm=self.spectral_norm)
        return config
