"""Tests of xmcgan_tf.losses.contrastive (symmetric InfoNCE, L_sent, L_img, accuracy)."""

import math

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from tests.losses import numpy_reference
from xmcgan_tf.losses import contrastive


def _pair(batch: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.RandomState(seed)
    return (rng.randn(batch, dim).astype(np.float32), rng.randn(batch, dim).astype(np.float32))


class SymmetricContrastiveLossTest(tf.test.TestCase, parameterized.TestCase):

    def test_hand_computed_constant(self):
        # Logits = identity / 1: each direction's CE per row is log(1 + e^-1).
        eye = np.eye(2, dtype=np.float32)
        loss = contrastive.symmetric_contrastive_loss(eye, eye, temperature=1.0)
        self.assertAllClose(loss, 2.0 * math.log(1.0 + math.exp(-1.0)), atol=1e-6)

    @parameterized.parameters((2, 3, 0.1, 0), (3, 4, 0.5, 1), (4, 2, 1.0, 2), (4, 5, 0.07, 3))
    def test_matches_numpy(self, batch, dim, temperature, seed):
        a, b = _pair(batch, dim, seed)
        loss = contrastive.symmetric_contrastive_loss(a, b, temperature)
        self.assertEqual(loss.dtype, tf.float32)
        self.assertEqual(loss.shape, ())
        self.assertAllClose(loss, numpy_reference.symmetric_contrastive(a, b, temperature),
                            rtol=1e-5, atol=1e-5)

    def test_caption_bank_negatives_match_numpy_and_exclusions_drop_columns(self):
        a, b = _pair(3, 4, 11)
        bank = np.random.RandomState(12).randn(5, 4).astype(np.float32)
        excluded = np.zeros([3, 5], bool)
        excluded[0, 1] = excluded[2, 4] = True
        loss = contrastive.symmetric_contrastive_loss(a, b, 0.2, extra_b=bank,
                                                      extra_b_excluded=excluded)
        self.assertAllClose(
            loss, numpy_reference.contrastive_with_bank(a, b, bank, excluded, 0.2), rtol=1e-5)
        # More negatives can only raise the a→b cross-entropy; excluding all of them gives
        # back the in-batch loss.
        self.assertGreater(loss, contrastive.symmetric_contrastive_loss(a, b, 0.2))
        self.assertAllClose(
            contrastive.sentence_contrastive_loss(a, b, 0.2, negative_sentence_features=bank,
                                                  negative_excluded=np.ones([3, 5], bool)),
            contrastive.symmetric_contrastive_loss(a, b, 0.2), rtol=1e-6)

    def test_graph_mode_with_unknown_batch(self):
        a, b = _pair(3, 4, 7)
        spec = tf.TensorSpec([None, 4], tf.float32)
        fn = tf.function(lambda x, y: contrastive.symmetric_contrastive_loss(x, y, 0.1),
                         input_signature=[spec, spec])
        self.assertAllClose(fn(a, b), numpy_reference.symmetric_contrastive(a, b, 0.1),
                            rtol=1e-5, atol=1e-5)

    def test_swapping_sides_gives_the_same_loss(self):
        a, b = _pair(4, 3, 11)
        self.assertAllClose(contrastive.symmetric_contrastive_loss(a, b, 0.1),
                            contrastive.symmetric_contrastive_loss(b, a, 0.1), atol=1e-6)

    def test_invariant_to_positive_rescaling_of_each_vector(self):
        a, b = _pair(4, 3, 12)
        scales = np.array([[0.01], [3.0], [250.0], [1.5]], np.float32)
        self.assertAllClose(contrastive.symmetric_contrastive_loss(a, b, 0.1),
                            contrastive.symmetric_contrastive_loss(a * scales, b / scales, 0.1),
                            rtol=1e-5, atol=1e-5)

    def test_invariant_to_permuting_the_pairs(self):
        a, b = _pair(4, 3, 13)
        order = [2, 0, 3, 1]
        self.assertAllClose(contrastive.symmetric_contrastive_loss(a, b, 0.2),
                            contrastive.symmetric_contrastive_loss(a[order], b[order], 0.2),
                            atol=1e-6)

    def test_aligned_features_with_small_temperature(self):
        a = np.eye(4, 6, dtype=np.float32) * np.array([[1.0], [2.0], [0.5], [3.0]], np.float32)
        b = np.eye(4, 6, dtype=np.float32)
        loss = contrastive.symmetric_contrastive_loss(a, b, temperature=0.01)
        self.assertLess(float(loss), 1e-6)
        self.assertAllClose(contrastive.contrastive_accuracy(a, b), 1.0)

    def test_global_negatives_outside_a_strategy_is_the_local_loss(self):
        a, b = _pair(3, 4, 14)
        self.assertAllClose(
            contrastive.symmetric_contrastive_loss(a, b, 0.1, global_negatives=True),
            contrastive.symmetric_contrastive_loss(a, b, 0.1), atol=1e-7)

    def test_gradients_are_finite_and_match_numerical(self):
        a, b = _pair(3, 4, 15)
        a_var, b_var = tf.Variable(a), tf.Variable(b)
        with tf.GradientTape() as tape:
            loss = contrastive.symmetric_contrastive_loss(a_var, b_var, 0.1)
        grad_a, grad_b = tape.gradient(loss, [a_var, b_var])
        self.assertTrue(np.all(np.isfinite(grad_a)) and np.all(np.isfinite(grad_b)))
        self.assertGreater(float(tf.reduce_max(tf.abs(grad_a))), 0.0)
        # Central difference on one coordinate against the numpy reference.
        eps = 1e-3
        plus, minus = a.astype(np.float64), a.astype(np.float64)
        plus[1, 2] += eps
        minus[1, 2] -= eps
        numeric = (numpy_reference.symmetric_contrastive(plus, b, 0.1)
                   - numpy_reference.symmetric_contrastive(minus, b, 0.1)) / (2 * eps)
        self.assertAllClose(grad_a[1, 2], numeric, rtol=1e-2, atol=1e-3)

    def test_bfloat16_inputs_give_float32(self):
        a, b = _pair(3, 4, 16)
        a16, b16 = tf.constant(a, tf.bfloat16), tf.constant(b, tf.bfloat16)
        loss = contrastive.symmetric_contrastive_loss(a16, b16, 0.1)
        self.assertEqual(loss.dtype, tf.float32)
        expected = numpy_reference.symmetric_contrastive(
            tf.cast(a16, tf.float32).numpy(), tf.cast(b16, tf.float32).numpy(), 0.1)
        self.assertAllClose(loss, expected, rtol=1e-5, atol=1e-5)

    def test_bad_inputs_raise(self):
        a, b = _pair(3, 4, 17)
        with self.assertRaisesRegex(ValueError, "same shape"):
            contrastive.symmetric_contrastive_loss(a, b[:2], 0.1)
        with self.assertRaisesRegex(ValueError, "rank 2"):
            contrastive.symmetric_contrastive_loss(a[None], b[None], 0.1)
        with self.assertRaisesRegex(ValueError, "temperature"):
            contrastive.symmetric_contrastive_loss(a, b, 0.0)
        with self.assertRaisesRegex(TypeError, "real-valued"):
            contrastive.symmetric_contrastive_loss(tf.constant(["x"]), tf.constant(["y"]), 0.1)


class NamedLossesTest(tf.test.TestCase):

    def test_sentence_loss_defaults_to_temperature_0_1(self):
        image, sentence = _pair(4, 3, 20)
        self.assertAllClose(contrastive.sentence_contrastive_loss(image, sentence),
                            numpy_reference.symmetric_contrastive(image, sentence, 0.1),
                            rtol=1e-5, atol=1e-5)

    def test_image_loss_defaults_to_temperature_0_1(self):
        fake, real = _pair(4, 3, 21)
        self.assertAllClose(contrastive.image_contrastive_loss(fake, real),
                            numpy_reference.symmetric_contrastive(fake, real, 0.1),
                            rtol=1e-5, atol=1e-5)
        self.assertAllClose(contrastive.image_contrastive_loss(fake, real, temperature=0.3),
                            numpy_reference.symmetric_contrastive(fake, real, 0.3),
                            rtol=1e-5, atol=1e-5)


class SymmetricCrossEntropyTest(tf.test.TestCase):

    def test_offset_labels_pick_the_offset_diagonal(self):
        logits = np.random.RandomState(30).randn(4, 4).astype(np.float32)
        # Rows 2..3 of a 4x4 matrix with their matches at columns 2..3.
        full_rows = contrastive.diagonal_cross_entropy(logits)
        lower_rows = contrastive.diagonal_cross_entropy(logits[2:], label_offset=2)
        upper_rows = contrastive.diagonal_cross_entropy(logits[:2])
        self.assertAllClose(full_rows, 0.5 * (lower_rows + upper_rows), atol=1e-6)

    def test_matches_numpy_on_a_square_matrix(self):
        logits = np.random.RandomState(31).randn(3, 3).astype(np.float32)
        self.assertAllClose(contrastive.symmetric_cross_entropy(logits, logits.T),
                            numpy_reference.symmetric_cross_entropy(logits), atol=1e-5)


class ContrastiveAccuracyTest(tf.test.TestCase, parameterized.TestCase):

    def test_hand_computed_cases(self):
        eye = np.eye(2, dtype=np.float32)
        self.assertAllClose(contrastive.contrastive_accuracy(eye, eye), 1.0)
        self.assertAllClose(contrastive.contrastive_accuracy(eye, eye[::-1]), 0.0)
        # Row 0 matches, row 1's best candidate is b_0, row 2 matches: 2/3.
        a = np.array([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0]], np.float32)
        b = np.array([[1.0, 0.0], [-1.0, 0.2], [0.0, 1.0]], np.float32)
        self.assertAllClose(contrastive.contrastive_accuracy(a, b), 2.0 / 3.0)

    @parameterized.parameters(0, 1, 2)
    def test_matches_numpy(self, seed):
        a, b = _pair(4, 3, 40 + seed)
        b = a + 0.8 * b  # partly aligned so the accuracy is strictly between 0 and 1 typically
        accuracy = contrastive.contrastive_accuracy(a, b)
        self.assertEqual(accuracy.dtype, tf.float32)
        self.assertAllClose(accuracy, numpy_reference.row_accuracy(a, b))

    def test_is_row_wise(self):
        # a_0 and a_1 both retrieve b_0 (1/2), while b_0 retrieves a_0 and b_1 retrieves a_1.
        a = np.array([[1.0, 0.0], [0.8, 0.6]], np.float32)
        b = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
        self.assertAllClose(contrastive.contrastive_accuracy(a, b), 0.5)
        self.assertAllClose(contrastive.contrastive_accuracy(b, a), 1.0)

    def test_bfloat16_input(self):
        eye = tf.eye(3, dtype=tf.bfloat16)
        self.assertEqual(contrastive.contrastive_accuracy(eye, eye).dtype, tf.float32)
