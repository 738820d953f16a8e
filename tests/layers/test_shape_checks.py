"""Tests of xmcgan_tf.layers.shape_checks."""

import keras
import tensorflow as tf

from xmcgan_tf.layers import shape_checks


class AssertShapeTest(tf.test.TestCase):

    def test_matching_shape_passes(self):
        shape_checks.assert_shape(tf.zeros([2, 4, 4, 3]), [2, 4, 4, 3], "x")

    def test_none_matches_any_size(self):
        shape_checks.assert_shape(tf.zeros([5, 4, 3]), [None, 4, None], "x")

    def test_unknown_dimension_passes(self):
        shape_checks.assert_shape(keras.KerasTensor((None, 7)), [3, 7], "x")

    def test_wrong_dimension_names_tensor_and_shapes(self):
        with self.assertRaisesRegex(ValueError, r"block output: expected shape \(\?, 8, 8\), "
                                                r"received \(2, 8, 4\)"):
            shape_checks.assert_shape(tf.zeros([2, 8, 4]), [None, 8, 8], "block output")

    def test_wrong_rank_raises(self):
        with self.assertRaisesRegex(ValueError, "words"):
            shape_checks.assert_shape(tf.zeros([2, 8]), [None, 8, 16], "words")
