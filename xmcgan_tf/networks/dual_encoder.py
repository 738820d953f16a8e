"""DAMSM-style dual encoder: text and image encoders into one joint space (SPEC §4, §6).

Pretrained by `xmcgan_tf.models.dual_encoder_pretraining` (DAMSM + optional NT-Xent / SupCon),
then frozen: its image encoder supplies the features of the T2I_CL and SCL generator terms, and a
separately trained instance is the R-precision judge of `xmcgan_tf.evaluation.r_precision`.

Legend: B batch, S image size, T tokens, D stored BERT dimension, K joint dimension (256),
R = cond_size² image regions.

The text side works on the stored BERT `sequence_output` (the BERT weights stay frozen, as in
the dataset): a per-token two-layer projection gives word features, and a masked mean of them,
projected once more, the sentence feature. The image side is a small convolutional network whose
activations at `cond_size`×`cond_size` are the region features and whose pooled last block is
the global feature, as in DAMSM's Inception-based encoder. It normalises with GroupNorm rather
than BatchNorm so that the frozen encoder behaves identically in training and inference.
"""

from __future__ import annotations

from typing import NamedTuple

import keras
import tensorflow as tf

# Output channels of each stride-2 stage, as multiples of `width`, keyed by image size. The
# stage whose output is `cond_size` wide gives the region features.
_IMAGE_STAGES = {
    64: (1, 2, 4, 8),       # 64 -> 32 -> 16 -> 8 -> 4
    128: (1, 2, 4, 8, 8),   # 128 -> 64 -> 32 -> 16 -> 8 -> 4
    256: (1, 1, 2, 4, 8, 8),
}


class TextFeatures(NamedTuple):
    """Text-encoder outputs.

    Attributes:
      words: [B, T, K] float32 word features.
      sentence: [B, K] float32 sentence feature.
    """

    words: tf.Tensor
    sentence: tf.Tensor


class ImageFeatures(NamedTuple):
    """Image-encoder outputs.

    Attributes:
      regions: [B, R, K] float32 region features.
      global_features: [B, K] float32 global feature.
    """

    regions: tf.Tensor
    global_features: tf.Tensor


def _check_image_size(image_size: int) -> tuple[int, ...]:
    if image_size not in _IMAGE_STAGES:
        raise ValueError(f"dual encoder: image_size {image_size} is not supported; "
                         f"allowed sizes are {sorted(_IMAGE_STAGES)}")
    return _IMAGE_STAGES[image_size]


class DualTextEncoder(keras.Model):
    """Projects BERT word embeddings to word and sentence features in the joint space."""

    def __init__(self, embedding_dim: int = 768, joint_dim: int = 256, hidden_dim: int = 512,
                 **kwargs):
        super().__init__(**kwargs)
        self.embedding_dim = embedding_dim
        self.joint_dim = joint_dim
        self.hidden_dim = hidden_dim
        self.word_hidden = keras.layers.Dense(hidden_dim, activation="gelu", name="word_hidden",
                                              dtype=self.dtype_policy)
        self.word_projection = keras.layers.Dense(joint_dim, name="word_projection",
                                                  dtype=self.dtype_policy)
        self.sentence_projection = keras.layers.Dense(joint_dim, name="sentence_projection",
                                                      dtype=self.dtype_policy)

    def call(self, words: tf.Tensor, word_mask: tf.Tensor) -> TextFeatures:
        """Encodes captions.

        Args:
          words: [B, T, D] float32 BERT sequence_output.
          word_mask: [B, T] float32, 1 on real tokens.

        Returns:
          TextFeatures(words [B, T, K], sentence [B, K]), float32.
        """
        mask = tf.cast(word_mask, tf.float32)[..., None]  # [B, T, 1]
        word_features = self.word_projection(self.word_hidden(words))
        word_features = tf.cast(word_features, tf.float32)  # [B, T, K]
        pooled = tf.reduce_sum(word_features * mask, axis=1) / tf.maximum(
            tf.reduce_sum(mask, axis=1), 1.0)  # [B, K]
        sentence = tf.cast(self.sentence_projection(pooled), tf.float32)
        return TextFeatures(words=word_features, sentence=sentence)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(embedding_dim=self.embedding_dim, joint_dim=self.joint_dim,
                      hidden_dim=self.hidden_dim)
        return config


class DualImageEncoder(keras.Model):
    """Convolutional image encoder giving region and global features in the joint space."""

    def __init__(self, image_size: int = 64, width: int = 32, joint_dim: int = 256,
                 cond_size: int = 16, **kwargs):
        super().__init__(**kwargs)
        stages = _check_image_size(image_size)
        sizes = [image_size // 2 ** (i + 1) for i in range(len(stages))]
        if cond_size not in sizes:
            raise ValueError(f"dual encoder: cond_size {cond_size} is not a stage size of a "
                             f"{image_size} px encoder; allowed {sizes}")
        self.image_size = image_size
        self.width = width
        self.joint_dim = joint_dim
        self.cond_size = cond_size
        self._region_stage = sizes.index(cond_size)
        self.stages = []
        for i, multiplier in enumerate(stages):
            self.stages.append([
                keras.layers.Conv2D(width * multiplier, 3, strides=2, padding="same",
                                    use_bias=False, name=f"stage{i}_conv",
                                    dtype=self.dtype_policy),
                keras.layers.GroupNormalization(groups=min(8, width * multiplier),
                                                name=f"stage{i}_norm", dtype="float32"),
                keras.layers.Conv2D(width * multiplier, 3, padding="same", activation="relu",
                                    name=f"stage{i}_conv2", dtype=self.dtype_policy),
            ])
        self.region_projection = keras.layers.Conv2D(joint_dim, 1, name="region_projection",
                                                     dtype=self.dtype_policy)
        self.global_projection = keras.layers.Dense(joint_dim, name="global_projection",
                                                    dtype=self.dtype_policy)

    def call(self, images: tf.Tensor, training: bool | None = None) -> ImageFeatures:
        """Encodes images.

        Args:
          images: [B, S, S, 3] float32 in [0, 1].
          training: unused (GroupNorm behaves the same in training and inference, so a frozen
            encoder sees the features it was trained with); kept for the Keras call convention.

        Returns:
          ImageFeatures(regions [B, R, K], global_features [B, K]), float32.
        """
        x = images * 2.0 - 1.0
        regions = None
        for i, (conv, norm, conv2) in enumerate(self.stages):
            x = conv(x)
            x = tf.nn.relu(tf.cast(norm(tf.cast(x, tf.float32)), x.dtype))
            x = conv2(x)
            if i == self._region_stage:
                regions = self.region_projection(x)  # [B, cond, cond, K]
        batch = tf.shape(images)[0]
        regions = tf.reshape(tf.cast(regions, tf.float32),
                             [batch, self.cond_size * self.cond_size, self.joint_dim])
        global_features = self.global_projection(tf.reduce_mean(x, axis=[1, 2]))
        return ImageFeatures(regions=regions, global_features=tf.cast(global_features, tf.float32))

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(image_size=self.image_size, width=self.width, joint_dim=self.joint_dim,
                      cond_size=self.cond_size)
        return config


class DualEncoder(keras.Model):
    """Text and image encoders of one joint space.

    `encode_images` and `encode_texts` are the judge interface of R-precision and the feature
    interface of the T2I_CL / SCL generator terms.
    """

    def __init__(self, image_size: int = 64, embedding_dim: int = 768, joint_dim: int = 256,
                 image_width: int = 32, text_hidden_dim: int = 512, cond_size: int = 16,
                 **kwargs):
        super().__init__(**kwargs)
        self.image_size = image_size
        self.embedding_dim = embedding_dim
        self.joint_dim = joint_dim
        self.image_width = image_width
        self.text_hidden_dim = text_hidden_dim
        self.cond_size = cond_size
        self.text_encoder = DualTextEncoder(embedding_dim=embedding_dim, joint_dim=joint_dim,
                                            hidden_dim=text_hidden_dim, name="text_encoder",
                                            dtype=self.dtype_policy)
        self.image_encoder = DualImageEncoder(image_size=image_size, width=image_width,
                                              joint_dim=joint_dim, cond_size=cond_size,
                                              name="image_encoder", dtype=self.dtype_policy)

    def build_for_inputs(self, max_tokens: int) -> None:
        """Creates all variables by running one dummy batch."""
        self.image_encoder(tf.zeros([1, self.image_size, self.image_size, 3]), training=False)
        self.text_encoder(tf.zeros([1, max_tokens, self.embedding_dim]), tf.ones([1, max_tokens]))
        self.built = True

    def call(self, images: tf.Tensor, words: tf.Tensor, word_mask: tf.Tensor,
             training: bool | None = None) -> tuple[ImageFeatures, TextFeatures]:
        """Encodes paired images [B, S, S, 3] and captions ([B, T, D], [B, T])."""
        return (self.image_encoder(images, training=training),
                self.text_encoder(words, word_mask))

    def encode_images(self, images: tf.Tensor) -> tf.Tensor:
        """Global image features [N, K] float32 of images [N, S, S, 3] in [0, 1] (inference)."""
        return self.image_encoder(images, training=False).global_features

    def encode_texts(self, words: tf.Tensor, word_mask: tf.Tensor) -> tf.Tensor:
        """Sentence features [N, K] float32 of captions ([N, T, D], [N, T])."""
        return self.text_encoder(words, word_mask).sentence

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(image_size=self.image_size, embedding_dim=self.embedding_dim,
                      joint_dim=self.joint_dim, image_width=self.image_width,
                      text_hidden_dim=self.text_hidden_dim, cond_size=self.cond_size)
        return config
