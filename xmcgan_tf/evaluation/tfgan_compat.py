"""The TF-GAN evaluation functions, importable under TensorFlow 2.21.

`import tensorflow_gan` fails under TF >= 2.16: the package `__init__` imports
`tensorflow_gan/python/train.py`, which subclasses `tf.estimator.SessionRunHook`, and
`tf.estimator` no longer exists (`AttributeError: module 'tensorflow' has no attribute
'estimator'`). tensorflow-gan 2.1.0 is the last release. Its `eval` subpackage itself needs only
TensorFlow, TensorFlow Probability and TensorFlow Hub, so this module registers bare package
modules for `tensorflow_gan` and `tensorflow_gan.python` (their `__init__`s never run) and then
imports `tensorflow_gan.python.eval` normally. The functions are TF-GAN's, unchanged.

This is the only place in xmcgan_tf that touches `tensorflow_gan`; everything else uses the
names below.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import types


def _import_tfgan_eval() -> types.ModuleType:
    """Imports `tensorflow_gan.python.eval` without running the package `__init__`s."""
    spec = importlib.util.find_spec("tensorflow_gan")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("tensorflow_gan is not installed; FID/KID/IS need tensorflow-gan==2.1.0 "
                          "(see requirements.txt)")
    root = list(spec.submodule_search_locations)[0]
    for name, path in (("tensorflow_gan", root),
                       ("tensorflow_gan.python", os.path.join(root, "python"))):
        if name not in sys.modules:
            package = types.ModuleType(
                name, f"Bare package module registered by {__name__}: only the eval "
                      "subpackage of tensorflow_gan is importable under TF 2.21.")
            package.__path__ = [path]
            sys.modules[name] = package
    return importlib.import_module("tensorflow_gan.python.eval")


tfgan_eval = _import_tfgan_eval()

# The TF-GAN functions the metrics use (signatures and semantics as documented by TF-GAN).
frechet_classifier_distance_from_activations = (
    tfgan_eval.frechet_classifier_distance_from_activations)
kernel_classifier_distance_and_std_from_activations = (
    tfgan_eval.kernel_classifier_distance_and_std_from_activations)
classifier_score_from_logits = tfgan_eval.classifier_score_from_logits

# The TF-GAN Inception module: TF-Hub handle, output names and input size.
INCEPTION_TFHUB: str = tfgan_eval.INCEPTION_TFHUB
INCEPTION_OUTPUT: str = tfgan_eval.INCEPTION_OUTPUT
INCEPTION_FINAL_POOL: str = tfgan_eval.INCEPTION_FINAL_POOL
INCEPTION_DEFAULT_IMAGE_SIZE: int = tfgan_eval.INCEPTION_DEFAULT_IMAGE_SIZE
