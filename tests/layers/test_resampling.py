"""Tests of xmcgan_tf.layers.resampling."""

import keras
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from tests import layer_test_helper
from xmcgan_tf.layers import resampling


def _features(shape, seed=0):
    return np.random.RandomState(seed).randn(*shape).astype(np.float32)


class NearestUpsampleTest(tf.test.TestCase, parameterized.TestCase):

    @parameterized.parameters(1, 2, 3)
    def test_repeats_pixels(self, factor):
        x = _features([2, 3, 5, 4])
        y = resampling.nearest_upsample("up", factor=factor)(x)
        want = np.repeat(np.repeat(x, factor, axis=1), factor, axis=2)
        self.assertAllEqual(y, want)

    def test_layer_contract(self):
        layer_test_helper.run_layer_test(
            self, keras.layers.UpSampling2D, resampling.nearest_upsample("up").get_config(),
            inputs=[_features([2, 4, 4, 3])], expected_output_shape=(2, 8, 8, 3),
            expected_num_trainable_weights=0)

    @parameterized.parameters(0, 2.0, -1)
    def test_bad_factor_raises(self, factor):
        with self.assertRaisesRegex(ValueError, "factor must be a positive integer"):
            resampling.nearest_upsample("up", factor=factor)


class AverageDownsampleTest(tf.test.TestCase):

    def test_averages_2x2_cells(self):
        x = _features([2, 4, 6, 3])
        y = resampling.average_downsample("down")(x)
        want = x.reshape(2, 2, 2, 3, 2, 3).mean(axis=(2, 4))
        self.assertAllClose(y, want, rtol=1e-6, atol=1e-6)

    def test_odd_border_averages_valid_cells_only(self):
        x = _features([1, 3, 3, 1])
        y = resampling.average_downsample("down")(x)
        self.assertEqual(y.shape, (1, 2, 2, 1))
        self.assertAllClose(y[0, 1, 1, 0], x[0, 2, 2, 0])
        self.assertAllClose(y[0, 0, 1, 0], x[0, 0:2, 2, 0].mean())

    def test_layer_contract(self):
        layer_test_helper.run_layer_test(
            self, keras.layers.AveragePooling2D, resampling.average_downsample("down").get_config(),
            inputs=[_features([2, 4, 4, 3])], expected_output_shape=(2, 2, 2, 3),
            expected_num_trainable_weights=0)
