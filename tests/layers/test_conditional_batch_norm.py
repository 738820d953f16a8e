"""Tests of xmcgan_tf.layers.conditional_batch_norm against a NumPy reference."""

import numpy as np
import tensorflow as tf

from tests import layer_test_helper
from xmcgan_tf.layers import conditional_batch_norm

EPSILON = 1e-5
MOMENTUM = 0.9


def _random(shape, seed):
    return np.random.RandomState(seed).randn(*shape).astype(np.float32)


def _numpy_batch_norm(x, mean, variance):
    return (x - mean) / np.sqrt(variance + EPSILON)


def _randomise_weights(layer, seed):
    """Replaces every trainable weight (zero biases included) by random values."""
    for i, variable in enumerate(layer.trainable_weights):
        variable.assign(0.3 * _random(variable.shape, seed + i))


class ConditionalBatchNormTest(tf.test.TestCase):

    def test_layer_contract(self):
        layer_test_helper.run_layer_test(
            self, conditional_batch_norm.ConditionalBatchNorm, {"name": "cbn"},
            inputs=[_random([4, 3, 3, 5], 0), _random([4, 6], 1)],
            expected_output_shape=(4, 3, 3, 5), expected_num_trainable_weights=4,
            expected_num_non_trainable_weights=2, call_kwargs={"training": True})

    def test_training_mode_matches_numpy(self):
        x, condition = _random([3, 2, 4, 5], 2) * 2.0 + 1.0, _random([3, 6], 3)
        layer = conditional_batch_norm.ConditionalBatchNorm()
        layer.build(x.shape, condition.shape)
        _randomise_weights(layer, 10)
        got = layer(x, condition, training=True)

        gamma = condition @ np.array(layer.gamma.kernel) + np.array(layer.gamma.bias)
        beta = condition @ np.array(layer.beta.kernel) + np.array(layer.beta.bias)
        normalized = _numpy_batch_norm(x, x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2)))
        want = normalized * (1.0 + gamma[:, None, None, :]) + beta[:, None, None, :]
        self.assertAllClose(got, want, rtol=1e-4, atol=1e-4)

    def test_moving_statistics_use_momentum_0_9(self):
        x, condition = _random([3, 2, 4, 5], 4) * 2.0 + 1.0, _random([3, 6], 5)
        layer = conditional_batch_norm.ConditionalBatchNorm()
        layer(x, condition, training=True)
        moving_mean = (1.0 - MOMENTUM) * x.mean(axis=(0, 1, 2))
        moving_variance = MOMENTUM + (1.0 - MOMENTUM) * x.var(axis=(0, 1, 2))
        self.assertAllClose(layer.batch_norm.moving_mean, moving_mean, rtol=1e-4, atol=1e-5)
        self.assertAllClose(layer.batch_norm.moving_variance, moving_variance, rtol=1e-4,
                            atol=1e-5)

        got = layer(x, condition, training=False)
        gamma = condition @ np.array(layer.gamma.kernel)
        beta = condition @ np.array(layer.beta.kernel)
        want = (_numpy_batch_norm(x, moving_mean, moving_variance) * (1.0 + gamma[:, None, None])
                + beta[:, None, None])
        self.assertAllClose(got, want, rtol=1e-4, atol=1e-4)

    def test_no_own_scale_or_offset(self):
        layer = conditional_batch_norm.ConditionalBatchNorm()
        layer(_random([2, 2, 2, 3], 6), _random([2, 4], 7))
        self.assertFalse(layer.batch_norm.center)
        self.assertFalse(layer.batch_norm.scale)
        self.assertEqual(layer.batch_norm.momentum, MOMENTUM)
        self.assertEqual(layer.batch_norm.epsilon, EPSILON)

    def test_bad_condition_rank_raises(self):
        layer = conditional_batch_norm.ConditionalBatchNorm(name="cbn")
        with self.assertRaisesRegex(ValueError, "ConditionalBatchNorm 'cbn'.*condition"):
            layer(_random([2, 2, 2, 3], 0), _random([2, 2, 2, 4], 1))


class SpatialConditionalBatchNormTest(tf.test.TestCase):

    def test_layer_contract(self):
        layer_test_helper.run_layer_test(
            self, conditional_batch_norm.SpatialConditionalBatchNorm, {"name": "scbn"},
            inputs=[_random([2, 4, 4, 5], 0), _random([2, 2, 2, 6], 1)],
            expected_output_shape=(2, 4, 4, 5), expected_num_trainable_weights=4,
            expected_num_non_trainable_weights=2, call_kwargs={"training": True})

    def test_training_mode_matches_numpy_on_upsampled_condition(self):
        factor = 2
        x, condition = _random([2, 4, 6, 3], 2) - 0.5, _random([2, 2, 3, 5], 3)
        layer = conditional_batch_norm.SpatialConditionalBatchNorm()
        layer.build(x.shape, condition.shape)
        _randomise_weights(layer, 20)
        got = layer(x, condition, training=True)

        # The reference convolves the upsampled condition (1×1 conv = per-pixel matmul).
        upsampled = np.repeat(np.repeat(condition, factor, axis=1), factor, axis=2)
        gamma = upsampled @ np.array(layer.gamma.kernel)[0, 0] + np.array(layer.gamma.bias)
        beta = upsampled @ np.array(layer.beta.kernel)[0, 0] + np.array(layer.beta.bias)
        normalized = _numpy_batch_norm(x, x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2)))
        self.assertAllClose(got, normalized * (1.0 + gamma) + beta, rtol=1e-4, atol=1e-4)

    def test_same_size_condition(self):
        x, condition = _random([2, 3, 3, 4], 4), _random([2, 3, 3, 2], 5)
        layer = conditional_batch_norm.SpatialConditionalBatchNorm()
        self.assertEqual(layer(x, condition, training=True).shape, (2, 3, 3, 4))

    def test_non_integer_factor_raises(self):
        layer = conditional_batch_norm.SpatialConditionalBatchNorm(name="scbn")
        with self.assertRaisesRegex(ValueError, "6x6 is not an integer multiple.*4x4"):
            layer(_random([1, 6, 6, 2], 0), _random([1, 4, 4, 3], 1))
