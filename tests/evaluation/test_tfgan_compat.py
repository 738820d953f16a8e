"""tensorflow_gan's eval functions import under TF 2.21 without the package __init__."""

import sys

import numpy as np
import tensorflow as tf

from xmcgan_tf.evaluation import tfgan_compat


def test_eval_functions_are_tfgans_and_run():
    assert tfgan_compat.tfgan_eval.__name__ == "tensorflow_gan.python.eval"
    assert "tensorflow_gan.python.train" not in sys.modules  # the broken part never ran
    a = tf.constant(np.random.default_rng(0).normal(size=(50, 3)))
    assert abs(float(tfgan_compat.frechet_classifier_distance_from_activations(a, a))) < 1e-8
    kid, _ = tfgan_compat.kernel_classifier_distance_and_std_from_activations(a, a + 5.0)
    assert float(kid) > 1.0
    assert float(tfgan_compat.classifier_score_from_logits(tf.zeros([4, 3]))) == 1.0


def test_inception_constants():
    assert tfgan_compat.INCEPTION_TFHUB == "https://tfhub.dev/tensorflow/tfgan/eval/inception/1"
    assert tfgan_compat.INCEPTION_FINAL_POOL == "pool_3"
    assert tfgan_compat.INCEPTION_OUTPUT == "logits"
    assert tfgan_compat.INCEPTION_DEFAULT_IMAGE_SIZE == 299
