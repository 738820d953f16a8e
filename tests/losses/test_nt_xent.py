"""Tests of xmcgan_tf.losses.nt_xent (SimCLR NT-Xent over paired views)."""

import math

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from tests.losses import numpy_reference
from xmcgan_tf.losses import nt_xent


def _pair(n: int, dim: int, seed: int):
    rng = np.random.RandomState(seed)
    return rng.randn(n, dim).astype(np.float32), rng.randn(n, dim).astype(np.float32)


class NtXentLossTest(tf.test.TestCase, parameterized.TestCase):

    @parameterized.parameters((2, 3, 0.5, 0), (3, 4, 0.5, 1), (4, 2, 0.1, 2), (4, 5, 1.0, 3))
    def test_matches_numpy(self, n, dim, temperature, seed):
        a, b = _pair(n, dim, seed)
        loss = nt_xent.nt_xent_loss(a, b, temperature)
        self.assertEqual(loss.dtype, tf.float32)
        self.assertEqual(loss.shape, ())
        self.assertAllClose(loss, numpy_reference.nt_xent(a, b, temperature), rtol=1e-5,
                            atol=1e-5)

    def test_default_temperature_is_0_5(self):
        a, b = _pair(3, 4, 4)
        self.assertAllClose(nt_xent.nt_xent_loss(a, b), numpy_reference.nt_xent(a, b, 0.5),
                            rtol=1e-5, atol=1e-5)

    def test_hand_computed_identical_orthogonal_pairs(self):
        # a = b = [e1, e2], τ = 0.5: each anchor has positive logit 2 and two negatives at 0.
        eye = np.eye(2, dtype=np.float32)
        self.assertAllClose(nt_xent.nt_xent_loss(eye, eye, 0.5),
                            math.log(1.0 + 2.0 * math.exp(-2.0)), atol=1e-6)

    def test_single_pair_has_no_negatives_and_zero_loss(self):
        a, b = _pair(1, 3, 5)
        self.assertAllClose(nt_xent.nt_xent_loss(a, b), 0.0, atol=1e-6)

    def test_identical_pairs_with_small_temperature_give_near_zero_loss(self):
        a = np.eye(4, 5, dtype=np.float32)
        loss = nt_xent.nt_xent_loss(a, a * 3.0, temperature=0.02)
        self.assertLess(float(loss), 1e-6)

    def test_swapping_views_and_permuting_pairs_keep_the_loss(self):
        a, b = _pair(4, 3, 6)
        order = [1, 3, 0, 2]
        loss = nt_xent.nt_xent_loss(a, b)
        self.assertAllClose(loss, nt_xent.nt_xent_loss(b, a), atol=1e-6)
        self.assertAllClose(loss, nt_xent.nt_xent_loss(a[order], b[order]), atol=1e-6)

    def test_invariant_to_positive_rescaling(self):
        a, b = _pair(3, 4, 7)
        scales = np.array([[0.1], [4.0], [30.0]], np.float32)
        self.assertAllClose(nt_xent.nt_xent_loss(a, b), nt_xent.nt_xent_loss(a * scales, b),
                            rtol=1e-5, atol=1e-5)

    def test_gradients_are_finite(self):
        a, b = _pair(3, 4, 8)
        a_var, b_var = tf.Variable(a), tf.Variable(b)
        with tf.GradientTape() as tape:
            loss = nt_xent.nt_xent_loss(a_var, b_var)
        for grad in tape.gradient(loss, [a_var, b_var]):
            self.assertTrue(np.all(np.isfinite(grad)))
            self.assertGreater(float(tf.reduce_max(tf.abs(grad))), 0.0)

    def test_bfloat16_inputs_give_float32(self):
        a, b = _pair(3, 4, 9)
        a16, b16 = tf.constant(a, tf.bfloat16), tf.constant(b, tf.bfloat16)
        loss = nt_xent.nt_xent_loss(a16, b16)
        self.assertEqual(loss.dtype, tf.float32)
        expected = numpy_reference.nt_xent(tf.cast(a16, tf.float32).numpy(),
                                           tf.cast(b16, tf.float32).numpy(), 0.5)
        self.assertAllClose(loss, expected, rtol=1e-5, atol=1e-5)

    def test_graph_mode_with_unknown_batch(self):
        a, b = _pair(3, 4, 10)
        spec = tf.TensorSpec([None, 4], tf.float32)
        fn = tf.function(nt_xent.nt_xent_loss, input_signature=[spec, spec])
        self.assertAllClose(fn(a, b), numpy_reference.nt_xent(a, b, 0.5), rtol=1e-5, atol=1e-5)

    def test_bad_inputs_raise(self):
        a, b = _pair(3, 4, 11)
        with self.assertRaisesRegex(ValueError, "same shape"):
            nt_xent.nt_xent_loss(a, b[:2])
        with self.assertRaisesRegex(ValueError, "temperature"):
            nt_xent.nt_xent_loss(a, b, temperature=-0.5)
