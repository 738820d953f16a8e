"""Tests of xmcgan_tf.networks.generator_blocks."""

import numpy as np
import tensorflow as tf

from tests import layer_test_helper
from xmcgan_tf.networks import generator_blocks


def _random(shape, seed):
    return np.random.RandomState(seed).randn(*shape).astype(np.float32)


def _zero_residual_branch(block):
    block.conv2.kernel.assign(tf.zeros_like(block.conv2.kernel))
    block.conv2.bias.assign(tf.zeros_like(block.conv2.bias))


def _numpy_upsampled_shortcut(block, x):
    upsampled = np.repeat(np.repeat(x, 2, axis=1), 2, axis=2)
    return (upsampled @ np.array(block.shortcut_conv.kernel)[0, 0]
            + np.array(block.shortcut_conv.bias))


class GenBlockTest(tf.test.TestCase):

    def test_layer_contract(self):
        # norm1, norm2: γ/β kernels and biases (4 each) + moving stats (2 each);
        # conv1, conv2, shortcut_conv: kernel and bias.
        layer_test_helper.run_layer_test(
            self, generator_blocks.GenBlock, {"filters": 3, "name": "block"},
            inputs=[_random([2, 4, 4, 6], 0), _random([2, 5], 1)],
            expected_output_shape=(2, 8, 8, 3), expected_num_trainable_weights=14,
            expected_num_non_trainable_weights=4, call_kwargs={"training": True})

    def test_shortcut_is_upsample_then_1x1_conv(self):
        x = _random([2, 3, 3, 4], 2)
        block = generator_blocks.GenBlock(5)
        block(x, _random([2, 6], 3), training=True)
        _zero_residual_branch(block)
        got = block(x, _random([2, 6], 3), training=True)
        self.assertAllClose(got, _numpy_upsampled_shortcut(block, x), rtol=1e-5, atol=1e-5)

    def test_kernels_are_glorot_normal(self):
        block = generator_blocks.GenBlock(4)
        self.assertEqual(block.conv1.kernel_initializer.__class__.__name__, "GlorotNormal")
        self.assertEqual(block.shortcut_conv.kernel_initializer.__class__.__name__,
                         "GlorotNormal")


class GenSpatialBlockTest(tf.test.TestCase):

    def test_layer_contract(self):
        layer_test_helper.run_layer_test(
            self, generator_blocks.GenSpatialBlock, {"filters": 3, "name": "block"},
            inputs=[_random([2, 4, 4, 6], 0), _random([2, 4, 4, 5], 1)],
            expected_output_shape=(2, 8, 8, 3), expected_num_trainable_weights=14,
            expected_num_non_trainable_weights=4, call_kwargs={"training": True})

    def test_condition_smaller_than_features(self):
        # Condition at 2x2, features at 4x4: norm1 upsamples it ×2 and norm2 ×4.
        block = generator_blocks.GenSpatialBlock(3)
        out = block(_random([2, 4, 4, 6], 0), _random([2, 2, 2, 5], 1), training=True)
        self.assertEqual(out.shape, (2, 8, 8, 3))
        self.assertEqual(block.norm1.upsample.size, (2, 2))
        self.assertEqual(block.norm2.upsample.size, (4, 4))

    def test_condition_modulates_per_pixel(self):
        x = _random([1, 4, 4, 3], 2)
        condition = _random([1, 4, 4, 2], 3)
        block = generator_blocks.GenSpatialBlock(3)
        before = np.array(block(x, condition, training=False))
        altered = condition.copy()
        altered[0, 0, 0] += 3.0  # one condition pixel -> output pixels (0..1, 0..1) and halo
        after = np.array(block(x, altered, training=False))
        changed = np.any(np.abs(after - before) > 1e-6, axis=-1)[0]
        self.assertTrue(changed[0, 0])
        self.assertFalse(changed[7, 7])
