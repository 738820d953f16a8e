"""Tests of xmcgan_tf.models.pretrained_image_encoder: local loading, freezing, gradients,
the released code's default input ([0, 1] at 224 px) and the refusal of softmax outputs."""

import os

import gin
import keras
import numpy as np
import pytest
import tensorflow as tf

from xmcgan_tf import train
from xmcgan_tf.models import pretrained_image_encoder as encoder_lib


def _keras_encoder() -> keras.Model:
    inputs = keras.Input([8, 8, 3])
    x = keras.layers.Conv2D(5, 3, padding="same", name="conv")(inputs)  # [B, 8, 8, 5]
    return keras.Model(inputs, x, name="tiny_encoder")


class _Module(tf.Module):
    def __init__(self):
        super().__init__()
        self.kernel = tf.Variable(np.random.default_rng(0).normal(size=[3, 4]).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec([None, 8, 8, 3], tf.float32)])
    def __call__(self, images):
        return tf.reduce_mean(images, axis=[1, 2]) @ self.kernel  # [B, 4]


@pytest.fixture(scope="module")
def keras_path(tmp_path_factory):
    model = _keras_encoder()
    path = str(tmp_path_factory.mktemp("enc") / "encoder.keras")
    model.save(path)
    return path, model


def test_keras_file_gives_pooled_features_and_input_gradients(keras_path):
    path, model = keras_path
    encoder = encoder_lib.load_image_encoder(path, input_size=8, input_range=(-1.0, 1.0))
    images = tf.random.uniform([2, 16, 16, 3])
    expected = tf.reduce_mean(model(2.0 * tf.image.resize(images, [8, 8]) - 1.0), axis=[1, 2])
    with tf.GradientTape() as tape:
        tape.watch(images)
        features = encoder(images)
        loss = tf.reduce_sum(features ** 2)
    np.testing.assert_allclose(features.numpy(), expected.numpy(), atol=1e-5)
    assert features.shape == (2, 5) and features.dtype == tf.float32
    assert tape.gradient(loss, images) is not None
    assert encoder.trainable_weights == []


def test_saved_model_directory(tmp_path):
    module = _Module()
    tf.saved_model.save(module, str(tmp_path))
    encoder = encoder_lib.PretrainedImageEncoder(str(tmp_path), input_size=None)
    images = tf.random.uniform([3, 8, 8, 3])
    np.testing.assert_allclose(encoder(images).numpy(), module(images).numpy(), atol=1e-6)


def test_caffe_preprocessing_matches_keras_applications(keras_path):
    path, model = keras_path
    encoder = encoder_lib.PretrainedImageEncoder(path, input_size=None, preprocessing="caffe")
    images = tf.random.uniform([1, 8, 8, 3])
    rgb = 255.0 * images.numpy()
    bgr_centered = rgb[..., ::-1] - np.array([103.939, 116.779, 123.68], np.float32)
    expected = np.mean(model(bgr_centered).numpy(), axis=(1, 2))
    np.testing.assert_allclose(encoder(images).numpy(), expected, rtol=1e-4, atol=1e-3)


def test_no_path_turns_the_term_off():
    assert encoder_lib.load_image_encoder(None) is None
    assert encoder_lib.load_image_encoder("") is None


@pytest.mark.parametrize("path, message", [
    ("https://tfhub.dev/some/model", "local path only"),
    ("/nonexistent/encoder.keras", "does not exist"),
])
def test_bad_paths_raise(path, message):
    with pytest.raises(encoder_lib.ImageEncoderError, match=message):
        encoder_lib.load_image_encoder(path)


def test_directory_without_saved_model_raises(tmp_path):
    os.makedirs(tmp_path / "empty")
    with pytest.raises(encoder_lib.ImageEncoderError, match="saved_model.pb"):
        encoder_lib.load_image_encoder(str(tmp_path / "empty"))


def _save(model: keras.Model, tmp_path, name: str = "encoder.keras") -> str:
    path = str(tmp_path / name)
    model.save(path)
    return path


def _classifier(*head: keras.layers.Layer) -> keras.Model:
    """[B, 8, 8, 3] -> [B, 4] through `head` (the last layers)."""
    inputs = keras.Input([8, 8, 3])
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    for layer in head:
        x = layer(x)
    return keras.Model(inputs, x)


def test_default_passes_unit_range_images_at_224_unchanged(tmp_path):
    # Mean pixel per channel; the Reshape fails unless the model is given 224 × 224 images.
    inputs = keras.Input([224, 224, 3])
    x = keras.layers.Reshape([224 * 224, 3])(inputs)
    path = _save(keras.Model(inputs, keras.layers.GlobalAveragePooling1D()(x)), tmp_path)
    encoder = encoder_lib.load_image_encoder(path)
    assert encoder.input_size == 224 and encoder.preprocessing is None
    images = tf.random.uniform([2, 16, 16, 3], seed=1)
    expected = tf.reduce_mean(tf.image.resize(images, [224, 224], method="bilinear"), axis=[1, 2])
    np.testing.assert_allclose(encoder(images).numpy(), expected.numpy(), atol=1e-5)


def test_xmcgan_gin_uses_the_released_input():
    gin.clear_config()
    try:
        train.parse_config(["experiments/synthetic_xmcgan_64.gin"],
                           ["MODEL_DIR='/runs/test'", "DATA_DIR='/data/test'"])
        scope = "pretrained_image_encoder.load_image_encoder"
        assert gin.query_parameter(f"{scope}.preprocessing") is None
        assert gin.query_parameter(f"{scope}.input_size") == 224
    finally:
        gin.clear_config()


def test_logits_output_loads(tmp_path):
    model = _classifier(keras.layers.Dense(4, name="logits"))
    encoder = encoder_lib.load_image_encoder(_save(model, tmp_path), input_size=8)
    images = tf.random.uniform([2, 8, 8, 3], seed=2)
    np.testing.assert_allclose(encoder(images).numpy(), model(images).numpy(), atol=1e-5)


@pytest.mark.parametrize("head", [
    lambda: [keras.layers.Dense(4, activation="softmax")],
    lambda: [keras.layers.Dense(4), keras.layers.Activation("softmax")],
    lambda: [keras.layers.Dense(4), keras.layers.Softmax()],
], ids=["dense_softmax", "activation_layer", "softmax_layer"])
def test_softmax_keras_output_raises(tmp_path, head):
    path = _save(_classifier(*head()), tmp_path)
    with pytest.raises(encoder_lib.ImageEncoderError,
                       match="softmax activation.*classifier_activation=None"):
        encoder_lib.load_image_encoder(path, input_size=8)


class _SoftmaxModule(tf.Module):
    """A SavedModel without Keras metadata whose output is a softmax."""

    def __init__(self):
        super().__init__()
        self.kernel = tf.Variable(np.random.default_rng(1).normal(size=[3, 6]).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    def __call__(self, images):
        return tf.nn.softmax(tf.reduce_mean(images, axis=[1, 2]) @ self.kernel)  # [B, 6]


def test_softmax_saved_model_output_raises_on_the_probe(tmp_path):
    tf.saved_model.save(_SoftmaxModule(), str(tmp_path))
    with pytest.raises(encoder_lib.ImageEncoderError,
                       match="sum to 1.*classifier_activation=None"):
        encoder_lib.load_image_encoder(str(tmp_path), input_size=8)


def test_resnet50_softmax_classifier_is_detected():
    kwargs = dict(weights=None, input_shape=(32, 32, 3), classes=10)
    softmax = keras.applications.ResNet50(classifier_activation="softmax", **kwargs)
    assert encoder_lib._softmax_output_layer(softmax) == "predictions"
    logits = keras.applications.ResNet50(classifier_activation=None, **kwargs)
    assert encoder_lib._softmax_output_layer(logits) is None
