"""Differentiable augmentation of the discriminator's input (DiffAugment; Zhao et al. 2020,
https://arxiv.org/abs/2006.10738), restricted to the policies that keep colour and place.

Every image D sees — real and fake, in D's and in G's update — passes through the same random
transforms, drawn independently per image, and G's gradient flows back through them, so D
cannot memorise a small training set by details the transforms change while G is still asked
to match the untransformed distribution. DiffAugment's colour policy (brightness, saturation,
contrast) is left out: captions name colours. The two policies kept:

  translation  shift by (dy, dx), each uniform in {−r·S, …, r·S} pixels, r = translation_ratio;
               the uncovered border takes the value 0.5 (the middle grey: 0 once D centres its
               input). r = 1/16 moves an object by at most 4 px at 64 px, a fifth of a cell of
               the synthetic scenes' 3×3 layout grid.
  cutout       set a square of side round(c·S), c = cutout_ratio, centred at a uniform random
               pixel (rows and columns y0 … y0 + side − 1, y0 = centre − side // 2), to 0.5
               (the square is clipped at the image border).

Written here rather than with `keras.layers.RandomTranslation` / `RandomErasing`: those are
input-pipeline layers that sample whether to transform each image and the erased patch's shape,
and interpolate the shift; DiffAugment applies every policy to every image with integer shifts
and a fixed square, as the paper and its released code do.

Legend: B batch, S image size.
"""

from __future__ import annotations

from typing import Sequence

import keras
import tensorflow as tf

TRANSLATION = "translation"
CUTOUT = "cutout"
POLICIES = (TRANSLATION, CUTOUT)
FILL_VALUE = 0.5  # the middle of the [0, 1] image range


class DifferentiableAugmentation(keras.layers.Layer):
    """Applies the chosen policies, in the order given, to [B, S, S, 3] images in [0, 1].

    Args:
      policies: names from `POLICIES`.
      translation_ratio: r, the largest shift as a fraction of the image side (DiffAugment:
        1/8).
      cutout_ratio: c, the erased square's side as a fraction of the image side (DiffAugment:
        1/2).
      seed: seed of the layer's random stream (None: from the global Keras seed).
      **kwargs: `keras.layers.Layer` arguments.

    Raises:
      ValueError: an unknown policy, or a ratio outside [0, 1).
    """

    def __init__(self, policies: Sequence[str] = POLICIES, translation_ratio: float = 0.125,
                 cutout_ratio: float = 0.5, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        unknown = [p for p in policies if p not in POLICIES]
        if unknown:
            raise ValueError(f"DifferentiableAugmentation: unknown policies {unknown}; allowed: "
                             f"{list(POLICIES)}")
        for name, value in (("translation_ratio", translation_ratio),
                            ("cutout_ratio", cutout_ratio)):
            if not 0.0 <= value < 1.0:
                raise ValueError(f"DifferentiableAugmentation: {name} must be in [0, 1), got "
                                 f"{value}")
        self.policies = tuple(policies)
        self.translation_ratio = float(translation_ratio)
        self.cutout_ratio = float(cutout_ratio)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def _uniform_int(self, batch: tf.Tensor, low: int, high: int) -> tf.Tensor:
        """[B, 1] int32 uniform in [low, high]."""
        draws = keras.random.randint([batch, 1], low, high + 1, seed=self.seed_generator)
        return tf.cast(draws, tf.int32)

    def translate(self, images: tf.Tensor) -> tf.Tensor:
        """Shifts each image by its own integer (dy, dx); [B, S, S, C] -> [B, S, S, C]."""
        size = images.shape[1]
        shift = int(round(self.translation_ratio * size))
        if shift == 0:
            return images
        batch = tf.shape(images)[0]
        dy = self._uniform_int(batch, -shift, shift)  # [B, 1]
        dx = self._uniform_int(batch, -shift, shift)
        padded = tf.pad(images, [[0, 0], [shift, shift], [shift, shift], [0, 0]],
                        constant_values=FILL_VALUE)
        # Output pixel (i, j) reads padded pixel (i + shift − dy, j + shift − dx).
        rows = tf.range(size)[None, :] + shift - dy  # [B, S]
        cols = tf.range(size)[None, :] + shift - dx
        shifted = tf.gather(padded, rows, axis=1, batch_dims=1)  # [B, S, S + 2·shift, C]
        return tf.gather(shifted, cols, axis=2, batch_dims=1)  # [B, S, S, C]

    def cutout(self, images: tf.Tensor) -> tf.Tensor:
        """Erases one square per image to FILL_VALUE; [B, S, S, C] -> [B, S, S, C]."""
        size = images.shape[1]
        side = int(round(self.cutout_ratio * size))
        if side == 0:
            return images
        batch = tf.shape(images)[0]
        centre_y = self._uniform_int(batch, 0, size - 1)  # [B, 1]
        centre_x = self._uniform_int(batch, 0, size - 1)
        positions = tf.range(size)[None, :]  # [1, S]
        top, left = centre_y - side // 2, centre_x - side // 2
        inside_y = (positions >= top) & (positions < top + side)  # [B, S]
        inside_x = (positions >= left) & (positions < left + side)
        erased = tf.logical_and(inside_y[:, :, None], inside_x[:, None, :])  # [B, S, S]
        keep = tf.cast(tf.logical_not(erased), images.dtype)[..., None]
        return images * keep + FILL_VALUE * (1.0 - keep)

    def call(self, images: tf.Tensor) -> tf.Tensor:
        """[B, S, S, C] images in [0, 1] -> the augmented images, same shape and dtype."""
        for policy in self.policies:
            images = self.translate(images) if policy == TRANSLATION else self.cutout(images)
        return images

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(policies=list(self.policies), translation_ratio=self.translation_ratio,
                      cutout_ratio=self.cutout_ratio, seed=self.seed)
        return config
