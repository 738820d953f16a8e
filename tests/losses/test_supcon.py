"""Tests of xmcgan_tf.losses.supcon (supervised contrastive loss)."""

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from tests.losses import numpy_reference
from xmcgan_tf.losses import nt_xent
from xmcgan_tf.losses import supcon


def _features(m: int, dim: int, seed: int) -> np.ndarray:
    return np.random.RandomState(seed).randn(m, dim).astype(np.float32)


class SupervisedContrastiveLossTest(tf.test.TestCase, parameterized.TestCase):

    @parameterized.parameters(
        ([0, 0, 0, 1, 1, 2, 2, 3], 0.1, 0),  # 3, 2, 2 positives per anchor; label 3 alone
        ([5, 1, 5, 1], 0.07, 1),
        ([0, 1, 2, 0, 1, 2, 0, 1], 0.5, 2),
        ([4, 4, 4, 4], 0.2, 3),  # every other item is a positive
    )
    def test_matches_numpy(self, labels, temperature, seed):
        features = _features(len(labels), 5, seed)
        loss = supcon.supervised_contrastive_loss(features, np.array(labels, np.int64),
                                                  temperature)
        self.assertEqual(loss.dtype, tf.float32)
        self.assertEqual(loss.shape, ())
        self.assertAllClose(loss, numpy_reference.supcon(features, labels, temperature),
                            rtol=1e-5, atol=1e-5)

    def test_default_temperature_is_0_1(self):
        features, labels = _features(6, 3, 4), [0, 1, 0, 1, 2, 2]
        self.assertAllClose(supcon.supervised_contrastive_loss(features, labels),
                            numpy_reference.supcon(features, labels, 0.1), rtol=1e-5, atol=1e-5)

    @parameterized.parameters((2, 0.5, 5), (3, 0.1, 6), (4, 0.5, 7))
    def test_two_views_with_distinct_labels_is_nt_xent(self, n, temperature, seed):
        rng = np.random.RandomState(seed)
        a, b = rng.randn(n, 4).astype(np.float32), rng.randn(n, 4).astype(np.float32)
        labels = np.concatenate([np.arange(n), np.arange(n)]).astype(np.int32)
        loss = supcon.supervised_contrastive_loss(np.concatenate([a, b]), labels, temperature)
        self.assertAllClose(loss, numpy_reference.nt_xent(a, b, temperature), rtol=1e-5,
                            atol=1e-5)
        self.assertAllClose(loss, nt_xent.nt_xent_loss(a, b, temperature), rtol=1e-5, atol=1e-5)

    def test_anchors_without_positives_are_left_out_of_the_mean(self):
        features, labels = _features(5, 3, 8), [0, 0, 7, 1, 1]
        loss = supcon.supervised_contrastive_loss(features, labels)
        # The numpy reference averages over the 4 anchors that have a positive; counting the
        # singleton (label 7) as a zero-loss anchor would give 4/5 of that.
        expected = numpy_reference.supcon(features, labels, 0.1)
        self.assertAllClose(loss, expected, rtol=1e-5, atol=1e-5)
        self.assertNotAllClose(loss, 0.8 * expected)

    def test_no_positives_at_all_gives_zero(self):
        loss = supcon.supervised_contrastive_loss(_features(4, 3, 9), [0, 1, 2, 3])
        self.assertAllClose(loss, 0.0)

    def test_invariant_to_relabelling_and_permutation(self):
        features, labels = _features(6, 4, 10), np.array([0, 1, 0, 2, 1, 2])
        loss = supcon.supervised_contrastive_loss(features, labels)
        relabelled = np.array([10, -3, 10, 99, -3, 99])
        self.assertAllClose(loss, supcon.supervised_contrastive_loss(features, relabelled),
                            atol=1e-6)
        order = [5, 2, 0, 4, 1, 3]
        self.assertAllClose(loss, supcon.supervised_contrastive_loss(features[order],
                                                                     labels[order]), atol=1e-5)

    def test_invariant_to_positive_rescaling(self):
        features, labels = _features(4, 3, 11), [0, 0, 1, 1]
        scaled = features * np.array([[0.2], [5.0], [1.0], [40.0]], np.float32)
        self.assertAllClose(supcon.supervised_contrastive_loss(features, labels),
                            supcon.supervised_contrastive_loss(scaled, labels), rtol=1e-5,
                            atol=1e-5)

    def test_clustered_features_reach_the_log_num_positives_floor(self):
        # Two positives per anchor, identical directions within a class, orthogonal across.
        features = np.repeat(np.eye(3, 4, dtype=np.float32), 3, axis=0)  # [9, 4]
        labels = np.repeat(np.arange(3), 3)
        loss = supcon.supervised_contrastive_loss(features, labels, temperature=0.02)
        # Each anchor's best achievable loss: log |P(a)| = log 2 (softmax split over positives).
        self.assertAllClose(loss, np.log(2.0), atol=1e-6)

    def test_gradients_are_finite(self):
        features = tf.Variable(_features(6, 3, 12))
        with tf.GradientTape() as tape:
            loss = supcon.supervised_contrastive_loss(features, [0, 0, 1, 1, 2, 3])
        grad = tape.gradient(loss, features)
        self.assertTrue(np.all(np.isfinite(grad)))
        self.assertGreater(float(tf.reduce_max(tf.abs(grad))), 0.0)

    def test_bfloat16_inputs_give_float32(self):
        features = tf.constant(_features(6, 3, 13), tf.bfloat16)
        labels = [0, 0, 1, 1, 2, 2]
        loss = supcon.supervised_contrastive_loss(features, labels)
        self.assertEqual(loss.dtype, tf.float32)
        self.assertAllClose(
            loss, numpy_reference.supcon(tf.cast(features, tf.float32).numpy(), labels, 0.1),
            rtol=1e-5, atol=1e-5)

    def test_graph_mode_with_unknown_size(self):
        features, labels = _features(6, 3, 14), np.array([0, 0, 1, 1, 2, 2], np.int32)
        fn = tf.function(supcon.supervised_contrastive_loss, input_signature=[
            tf.TensorSpec([None, 3], tf.float32), tf.TensorSpec([None], tf.int32)])
        self.assertAllClose(fn(features, labels), numpy_reference.supcon(features, labels, 0.1),
                            rtol=1e-5, atol=1e-5)

    def test_bad_inputs_raise(self):
        features = _features(4, 3, 15)
        with self.assertRaisesRegex(TypeError, "integer"):
            supcon.supervised_contrastive_loss(features, [0.0, 1.0, 0.0, 1.0])
        with self.assertRaisesRegex(ValueError, "same number of items"):
            supcon.supervised_contrastive_loss(features, [0, 1, 0])
        with self.assertRaisesRegex(ValueError, r"shape \[M\]"):
            supcon.supervised_contrastive_loss(features, [[0, 1, 0, 1]])
        with self.assertRaisesRegex(ValueError, "temperature"):
            supcon.supervised_contrastive_loss(features, [0, 1, 0, 1], temperature=0.0)
