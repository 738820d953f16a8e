"""Tests for xmcgan_tf.networks.dual_encoder."""

import numpy as np
import pytest
import tensorflow as tf

from xmcgan_tf.networks import dual_encoder


def _inputs(batch=3, size=64, tokens=6, dim=12):
    rng = np.random.default_rng(0)
    images = tf.constant(rng.uniform(size=(batch, size, size, 3)), tf.float32)
    words = tf.constant(rng.normal(size=(batch, tokens, dim)), tf.float32)
    mask = tf.constant([[1] * 4 + [0] * (tokens - 4)] * batch, tf.float32)
    return images, words, mask


@pytest.mark.parametrize("size,cond", [(64, 16), (64, 8), (128, 16)])
def test_output_shapes(size, cond):
    encoder = dual_encoder.DualEncoder(image_size=size, embedding_dim=12, joint_dim=10,
                                       image_width=4, text_hidden_dim=8, cond_size=cond)
    images, words, mask = _inputs(size=size)
    image_features, text_features = encoder(images, words, mask, training=False)
    assert image_features.regions.shape == (3, cond * cond, 10)
    assert image_features.global_features.shape == (3, 10)
    assert text_features.words.shape == (3, 6, 10)
    assert text_features.sentence.shape == (3, 10)
    assert encoder.encode_images(images).shape == (3, 10)
    assert encoder.encode_texts(words, mask).shape == (3, 10)


def test_padding_does_not_change_sentence():
    encoder = dual_encoder.DualEncoder(image_size=64, embedding_dim=12, joint_dim=10,
                                       image_width=4, text_hidden_dim=8)
    _, words, mask = _inputs()
    garbage = tf.concat([words[:, :4], 100.0 * tf.ones_like(words[:, 4:])], axis=1)
    np.testing.assert_allclose(encoder.encode_texts(words, mask).numpy(),
                               encoder.encode_texts(garbage, mask).numpy(), rtol=1e-5, atol=1e-5)


def test_config_round_trip_gives_same_outputs():
    encoder = dual_encoder.DualEncoder(image_size=64, embedding_dim=12, joint_dim=10,
                                       image_width=4, text_hidden_dim=8)
    encoder.build_for_inputs(max_tokens=6)
    clone = dual_encoder.DualEncoder.from_config(encoder.get_config())
    clone.build_for_inputs(max_tokens=6)
    clone.set_weights(encoder.get_weights())
    images, words, mask = _inputs()
    np.testing.assert_allclose(clone.encode_images(images).numpy(),
                               encoder.encode_images(images).numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(clone.encode_texts(words, mask).numpy(),
                               encoder.encode_texts(words, mask).numpy(), rtol=1e-5, atol=1e-5)


def test_bad_sizes_are_clear_errors():
    with pytest.raises(ValueError, match="image_size 48"):
        dual_encoder.DualEncoder(image_size=48)
    with pytest.raises(ValueError, match="cond_size 5"):
        dual_encoder.DualEncoder(image_size=64, cond_size=5)
