"""Feature networks: TF-GAN Inception from a handle (offline error, local copy) and the domain
evaluator."""

import os

import numpy as np
import pytest
import tensorflow as tf

from xmcgan_tf.evaluation import domain_evaluator
from xmcgan_tf.evaluation import feature_extractors


def test_default_handle_is_tfgan_inception():
    assert (feature_extractors.DEFAULT_INCEPTION_HANDLE
            == "https://tfhub.dev/tensorflow/tfgan/eval/inception/1")


def test_unreachable_inception_url_says_how_to_use_a_local_copy(monkeypatch, tmp_path):
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path))
    # `.invalid` never resolves (RFC 2606), so this fails the way the real URL fails offline.
    handle = "https://tfhub.invalid/tensorflow/tfgan/eval/inception/1"
    with pytest.raises(feature_extractors.FeatureNetworkError) as error:
        feature_extractors.InceptionExtractor(handle)
    message = str(error.value)
    assert handle in message and "offline" in message
    assert "--inception_handle=DIR" in message and "tf-hub-format=compressed" in message


def test_missing_local_inception_directory(tmp_path):
    with pytest.raises(feature_extractors.FeatureNetworkError, match="no saved_model.pb"):
        feature_extractors.make_feature_extractor("inception",
                                                  inception_handle=str(tmp_path / "nothing"))


class _StandInInception(tf.Module):
    """Same interface as the TF-GAN module: [B, 299, 299, 3] in [-1, 1] -> pool_3, logits."""

    def __init__(self):
        super().__init__()
        self.kernel = tf.Variable(np.random.default_rng(0).normal(size=(3, 6)), dtype=tf.float32)

    @tf.function(input_signature=[tf.TensorSpec([None, 299, 299, 3], tf.float32)])
    def __call__(self, images):
        pooled = tf.reduce_mean(images, axis=[1, 2])  # [B, 3]
        return {"pool_3": tf.reshape(pooled, [-1, 1, 1, 3]), "logits": pooled @ self.kernel}


def test_local_inception_copy_resizes_and_scales(tmp_path):
    path = str(tmp_path / "inception")
    tf.saved_model.save(_StandInInception(), path)
    extractor = feature_extractors.make_feature_extractor("inception", inception_handle=path)
    assert extractor.name == "inception" and extractor.fingerprint == path
    images = tf.fill([2, 32, 32, 3], 0.75)
    out = extractor(images)
    assert out["features"].shape == (2, 3) and out["logits"].shape == (2, 6)
    np.testing.assert_allclose(out["features"], 0.5, rtol=1e-5)  # 0.75 in [0, 1] -> 0.5


def test_domain_extractor(tmp_path):
    model = domain_evaluator.DomainEvaluator(width=4, cell_dim=4)
    model(tf.zeros([1, 64, 64, 3]))
    directory = str(tmp_path / "evaluator")
    domain_evaluator.save(model, directory,
                          vocabulary={"shapes": list("abcde"), "colors": list("abcdefgh"),
                                      "sizes": ["s", "l"], "grid": 3})
    extractor = feature_extractors.make_feature_extractor("domain", evaluator_dir=directory)
    assert extractor.name == "domain" and extractor.grid == 3
    images = tf.random.uniform([3, 64, 64, 3], seed=1)
    out = extractor(images)
    assert out["features"].shape == (3, 36) and out["logits"].shape == (3, 40)
    np.testing.assert_allclose(tf.reduce_logsumexp(out["logits"], axis=1), 0.0, atol=1e-5)
    np.testing.assert_allclose(out["shape_logits"], model(images)["shape_logits"], rtol=1e-5,
                               atol=1e-6)
    with pytest.raises(feature_extractors.FeatureNetworkError, match="train_evaluator"):
        feature_extractors.make_feature_extractor("domain", evaluator_dir=str(tmp_path))
    with pytest.raises(feature_extractors.FeatureNetworkError, match="--evaluator_dir"):
        feature_extractors.make_feature_extractor("domain")
    with pytest.raises(ValueError, match="not one of"):
        feature_extractors.make_feature_extractor("vgg")
    assert os.path.exists(os.path.join(directory, domain_evaluator.WEIGHTS_FILE))
