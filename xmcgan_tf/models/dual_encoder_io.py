"""Saving and loading a pretrained dual encoder by directory.

A dual-encoder directory holds `dual_encoder.json` (the network's config and the T it was
built for) and `dual_encoder.weights.h5`, both written to temporary names and renamed, so an
interrupted save never leaves a half-written encoder. The pretraining run directory is such a
directory; the GAN stage (T2I_CL, SCL, and L_img^enc through `load_image_tower`) and
R-precision load it by path.
"""

from __future__ import annotations

import json
import os

import keras
import tensorflow as tf

from xmcgan_tf import files
from xmcgan_tf.networks import dual_encoder as dual_encoder_lib

CONFIG_FILE = "dual_encoder.json"
WEIGHTS_FILE = "dual_encoder.weights.h5"


class DualEncoderLoadError(ValueError):
    """A dual-encoder directory that cannot be loaded; the message names the problem."""


def save_dual_encoder(encoder: dual_encoder_lib.DualEncoder, directory: str, *,
                      max_tokens: int, info: dict | None = None) -> str:
    """Writes `encoder` into `directory` atomically; returns the weights path.

    Args:
      encoder: a built DualEncoder.
      directory: destination (created if needed).
      max_tokens: T of the captions it encodes.
      info: extra facts to record (training step, dataset, losses used).
    """
    tf.io.gfile.makedirs(directory)
    weights = os.path.join(directory, WEIGHTS_FILE)
    encoder.save_weights(weights + ".tmp.weights.h5")
    tf.io.gfile.rename(weights + ".tmp.weights.h5", weights, overwrite=True)
    files.write_json_atomic(os.path.join(directory, CONFIG_FILE), {
        "config": encoder.get_config(), "max_tokens": int(max_tokens), "info": info or {}})
    return weights


def load_dual_encoder(directory: str, *, trainable: bool = False
                      ) -> dual_encoder_lib.DualEncoder:
    """Rebuilds and loads the dual encoder saved in `directory` (frozen unless `trainable`).

    Raises:
      DualEncoderLoadError: the directory or one of its files is missing or unreadable.
    """
    config_path = os.path.join(directory, CONFIG_FILE)
    weights = os.path.join(directory, WEIGHTS_FILE)
    for path in (config_path, weights):
        if not tf.io.gfile.exists(path):
            raise DualEncoderLoadError(
                f"{path} not found: {directory!r} is not a pretrained dual-encoder directory "
                "(train one with `python -m xmcgan_tf.pretrain_encoder`)")
    with tf.io.gfile.GFile(config_path) as f:
        saved = json.load(f)
    encoder = dual_encoder_lib.DualEncoder.from_config(saved["config"])
    encoder.build_for_inputs(max_tokens=int(saved["max_tokens"]))
    try:
        encoder.load_weights(weights)
    except ValueError as e:
        raise DualEncoderLoadError(f"{weights} does not match {config_path}: {e}") from e
    encoder.trainable = trainable
    return encoder


class ImageTower(keras.layers.Layer):
    """The frozen image side of a pretrained dual encoder as an image encoder: images
    [B, S, S, 3] in [0, 1] → global features [B, K] float32 (resized bilinearly to the
    encoder's image size when S differs). Gradients reach the images, never the weights.

    The encoder of L_img^enc where no ImageNet model can be read (`load_image_tower`): the
    released code's ResNet-50 knows natural images; a dual encoder pretrained on the training
    captions knows the domain's colours, shapes and places (BENCHMARKS.md, "Fidelity").
    """

    def __init__(self, encoder: dual_encoder_lib.DualEncoder, **kwargs):
        super().__init__(trainable=False, **kwargs)
        self.encoder = encoder
        self.encoder.trainable = False

    def call(self, images: tf.Tensor) -> tf.Tensor:
        size = self.encoder.image_size
        images = tf.cast(images, tf.float32)
        if images.shape[1] != size or images.shape[2] != size:
            images = tf.image.resize(images, [size, size], method="bilinear")
        return self.encoder.encode_images(images)


def load_image_tower(directory: str | None) -> ImageTower | None:
    """The frozen image encoder of the dual encoder saved in `directory` (see `ImageTower`),
    or None (L_img^enc off) when `directory` is None or empty.

    Raises:
      DualEncoderLoadError: as `load_dual_encoder`.
    """
    if not directory:
        return None
    return ImageTower(load_dual_encoder(directory), name="image_tower")
