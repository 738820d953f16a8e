"""Pluggable feature networks (`classifier_fn`s) for FID, KID and IS.

A feature extractor is called on images [B, S, S, 3] float32 in [0, 1] (any S; each network
resizes to its own input size) and returns a dict with
  - `features` [B, F] float32: the activations FID and KID compare;
  - `logits` [B, C] float32: the class scores IS reads.
Its `name` is part of every metric's protocol name and of the real-statistics cache key, so
numbers from different networks are never compared; its `fingerprint` identifies the weights.

Networks:
  - "inception": the TF-GAN Inception-v3 module (`pool_3` [B, 2048] features, `logits`
    [B, 1008]) from a TF-Hub handle or a local directory; images are resized bilinearly to
    299×299 and scaled to [-1, 1], as TF-GAN does.
  - "domain": the synthetic-set domain evaluator (`xmcgan_tf.evaluation.domain_evaluator`):
    penultimate features and the (shape, colour) object-class logits; its per-cell logits are
    passed through for object accuracy.
"""

from __future__ import annotations

import os
from typing import Protocol

import tensorflow as tf
import tensorflow_hub as hub

from xmcgan_tf.evaluation import domain_evaluator
from xmcgan_tf.evaluation import tfgan_compat

DEFAULT_INCEPTION_HANDLE = tfgan_compat.INCEPTION_TFHUB
INCEPTION_IMAGE_SIZE = tfgan_compat.INCEPTION_DEFAULT_IMAGE_SIZE
FEATURE_NETWORKS = ("domain", "inception")


class FeatureNetworkError(RuntimeError):
    """A feature network that cannot be loaded; the message says how to provide it."""


class FeatureExtractor(Protocol):
    """The interface FID/KID/IS and the real-statistics cache rely on."""

    name: str
    fingerprint: str

    def __call__(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        """[B, S, S, 3] float32 in [0, 1] -> {"features": [B, F], "logits": [B, C], ...}."""


def _is_url(handle: str) -> bool:
    return "://" in handle and not handle.startswith("file://")


def load_inception_module(handle: str = DEFAULT_INCEPTION_HANDLE):
    """Loads the TF-GAN Inception module from a TF-Hub handle or a local directory.

    Args:
      handle: TF-Hub URL, or a directory holding the module's SavedModel (`saved_model.pb`).

    Returns:
      The loaded module, callable on [B, 299, 299, 3] float32 in [-1, 1] and returning a dict
      with `pool_3` and `logits`.

    Raises:
      FeatureNetworkError: the URL cannot be fetched (for example offline) or the directory
        does not hold a SavedModel; the message says how to point at a local copy.
    """
    local_copy_hint = (
        "To use a local copy: on a connected machine run\n"
        f"  mkdir -p DIR && curl -L '{DEFAULT_INCEPTION_HANDLE}?tf-hub-format=compressed' "
        "| tar -xz -C DIR\n"
        "copy DIR here and pass it as the handle (--inception_handle=DIR), or set "
        "TFHUB_CACHE_DIR to a cache that already holds the module. On the synthetic set, "
        "--feature_network=domain needs no download.")
    if _is_url(handle):
        try:
            return hub.load(handle)
        except Exception as e:  # hub.load raises URLError, OSError, ValueError, ... offline.
            raise FeatureNetworkError(
                f"cannot load the TF-GAN Inception module from {handle!r} "
                f"({type(e).__name__}: {e}). This machine may be offline.\n"
                + local_copy_hint) from e
    path = handle[len("file://"):] if handle.startswith("file://") else handle
    if not tf.io.gfile.exists(os.path.join(path, "saved_model.pb")):
        raise FeatureNetworkError(
            f"{path!r} is not a TF-Hub/SavedModel directory of the TF-GAN Inception module "
            "(no saved_model.pb).\n" + local_copy_hint)
    return hub.load(path)


class InceptionExtractor:
    """TF-GAN Inception features (`pool_3`) and logits.

    Args:
      handle: TF-Hub URL or local directory of the TF-GAN Inception module
        (default `DEFAULT_INCEPTION_HANDLE`).
    """

    name = "inception"

    def __init__(self, handle: str = DEFAULT_INCEPTION_HANDLE):
        self.handle = handle
        self.fingerprint = handle
        self._module = load_inception_module(handle)
        self._run = tf.function(self._forward, reduce_retracing=True)

    def _forward(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        images = tf.image.resize(tf.cast(images, tf.float32),
                                 [INCEPTION_IMAGE_SIZE, INCEPTION_IMAGE_SIZE], method="bilinear")
        outputs = self._module(images * 2.0 - 1.0)
        batch = tf.shape(images)[0]
        return {
            "features": tf.reshape(tf.cast(outputs[tfgan_compat.INCEPTION_FINAL_POOL],
                                           tf.float32), [batch, -1]),
            "logits": tf.reshape(tf.cast(outputs[tfgan_compat.INCEPTION_OUTPUT], tf.float32),
                                 [batch, -1]),
        }

    def __call__(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        """[B, S, S, 3] float32 in [0, 1] -> features [B, 2048], logits [B, 1008]."""
        return self._run(images)


class DomainExtractor:
    """The synthetic-set domain evaluator as a feature network.

    Args:
      evaluator_dir: directory written by `python -m xmcgan_tf.train_evaluator`.
    """

    name = "domain"

    def __init__(self, evaluator_dir: str):
        self.evaluator_dir = evaluator_dir
        try:
            self.fingerprint = domain_evaluator.fingerprint(evaluator_dir)
            self.evaluator = domain_evaluator.load(evaluator_dir)
        except FileNotFoundError as e:
            raise FeatureNetworkError(str(e)) from e
        self.grid = self.evaluator.grid
        self._run = tf.function(self._forward, reduce_retracing=True)

    def _forward(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        outputs = self.evaluator(tf.cast(images, tf.float32), training=False)
        return {"logits": domain_evaluator.object_class_logits(outputs), **outputs}

    def __call__(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        """[B, S, S, 3] float32 in [0, 1] -> features [B, F], logits [B, NS·NC] and the
        per-cell `shape_logits`, `color_logits`, `size_logits`."""
        return self._run(images)


def make_feature_extractor(feature_network: str, *, evaluator_dir: str | None = None,
                           inception_handle: str = DEFAULT_INCEPTION_HANDLE) -> FeatureExtractor:
    """Builds the named feature network.

    Args:
      feature_network: "domain" or "inception".
      evaluator_dir: saved domain evaluator (required for "domain").
      inception_handle: TF-Hub handle or local directory (for "inception").

    Returns:
      A FeatureExtractor.
    """
    if feature_network == "domain":
        if not evaluator_dir:
            raise FeatureNetworkError(
                "feature_network 'domain' needs the directory of a trained domain evaluator "
                "(--evaluator_dir); train one with `python -m xmcgan_tf.train_evaluator "
                "--data_dir=DATA_DIR --output_dir=DIR`")
        return DomainExtractor(evaluator_dir)
    if feature_network == "inception":
        return InceptionExtractor(inception_handle)
    raise ValueError(f"feature_network {feature_network!r} is not one of {FEATURE_NETWORKS}")
