"""Tests of xmcgan_tf.models.dual_encoder_io: the frozen image tower used as L_img^enc's
encoder."""

import numpy as np
import pytest
import tensorflow as tf

from tests import conftest
from xmcgan_tf.models import dual_encoder_io

T, D = 5, 8


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    return conftest.save_random_dual_encoder(str(tmp_path_factory.mktemp("encoder")),
                                             max_tokens=T, embedding_dim=D)


def test_image_tower_gives_the_encoders_global_features_with_gradients_to_the_images(
        encoder_dir):
    tower = dual_encoder_io.load_image_tower(encoder_dir)
    reference = dual_encoder_io.load_dual_encoder(encoder_dir)
    images = tf.constant(np.random.default_rng(0).uniform(size=[3, 64, 64, 3]), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(images)
        features = tower(images)
        loss = tf.reduce_sum(features ** 2)
    np.testing.assert_allclose(features, reference.encode_images(images), rtol=1e-5, atol=1e-6)
    assert features.shape == (3, 8)
    assert float(tf.reduce_sum(tf.abs(tape.gradient(loss, images)))) > 0.0
    assert tower.trainable_variables == []
    # Other image sizes are resized to the encoder's.
    small = tf.image.resize(images, [32, 32])
    np.testing.assert_allclose(tower(small), reference.encode_images(
        tf.image.resize(small, [64, 64])), rtol=1e-5, atol=1e-6)


def test_no_directory_leaves_the_term_out_and_a_wrong_one_is_named(tmp_path):
    assert dual_encoder_io.load_image_tower(None) is None
    assert dual_encoder_io.load_image_tower("") is None
    with pytest.raises(dual_encoder_io.DualEncoderLoadError, match="not a pretrained"):
        dual_encoder_io.load_image_tower(str(tmp_path))
