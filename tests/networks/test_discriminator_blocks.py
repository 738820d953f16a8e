"""Tests of xmcgan_tf.networks.discriminator_blocks."""

import keras
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from tests import layer_test_helper
from xmcgan_tf.layers import spectral_normalization
from xmcgan_tf.networks import discriminator_blocks


def _random(shape, seed):
    return np.random.RandomState(seed).randn(*shape).astype(np.float32)


def _zero_residual_branch(block):
    kernel = block.conv2.kernel
    kernel.assign(tf.zeros_like(kernel))
    block.conv2.bias.assign(tf.zeros_like(block.conv2.bias))


def _normalized_kernel(layer):
    """W / σ with the layer's current power-iteration vector (u unchanged)."""
    return np.array(layer.normalized_kernel(training=False))


class DiscOptimizedBlockTest(tf.test.TestCase):

    def test_layer_contract(self):
        # Three SN convs: kernel + bias trainable, vector_u non-trainable.
        layer_test_helper.run_layer_test(
            self, discriminator_blocks.DiscOptimizedBlock, {"filters": 4, "name": "block"},
            inputs=[_random([2, 8, 8, 3], 0)], expected_output_shape=(2, 4, 4, 4),
            expected_num_trainable_weights=6, expected_num_non_trainable_weights=3,
            call_kwargs={"training": True})

    def test_shortcut_is_downsample_then_1x1_conv(self):
        x = _random([2, 4, 4, 3], 1)
        block = discriminator_blocks.DiscOptimizedBlock(5)
        block(x, training=False)
        _zero_residual_branch(block)
        pooled = x.reshape(2, 2, 2, 2, 2, 3).mean(axis=(2, 4))
        conv = block.shortcut_conv
        want = pooled @ _normalized_kernel(conv)[0, 0] + np.array(conv.bias)
        self.assertAllClose(block(x, training=False), want, rtol=1e-5, atol=1e-5)


class DiscBlockTest(tf.test.TestCase, parameterized.TestCase):

    @parameterized.parameters(
        # (in channels, filters, downsample, output size, trainable, non-trainable)
        (3, 4, True, 2, 6, 3),
        (3, 4, False, 4, 6, 3),
        (4, 4, False, 4, 4, 2),  # identity shortcut
    )
    def test_layer_contract(self, channels, filters, downsample, size, trainable,
                            non_trainable):
        layer_test_helper.run_layer_test(
            self, discriminator_blocks.DiscBlock,
            {"filters": filters, "downsample": downsample, "name": "block"},
            inputs=[_random([2, 4, 4, channels], 0)],
            expected_output_shape=(2, size, size, filters),
            expected_num_trainable_weights=trainable,
            expected_num_non_trainable_weights=non_trainable, call_kwargs={"training": True})

    def test_identity_shortcut(self):
        x = _random([2, 4, 4, 4], 1)
        block = discriminator_blocks.DiscBlock(4, downsample=False)
        block(x)
        self.assertIsNone(block.shortcut_conv)
        _zero_residual_branch(block)
        self.assertAllClose(block(x), x)

    def test_downsampling_shortcut_is_1x1_conv_then_downsample(self):
        x = _random([2, 4, 4, 3], 2)
        block = discriminator_blocks.DiscBlock(5, downsample=True)
        block(x)
        _zero_residual_branch(block)
        conv = block.shortcut_conv
        projected = x @ _normalized_kernel(conv)[0, 0] + np.array(conv.bias)
        want = projected.reshape(2, 2, 2, 2, 2, 5).mean(axis=(2, 4))
        self.assertAllClose(block(x), want, rtol=1e-5, atol=1e-5)


class SpectralLayersTest(tf.test.TestCase):

    def test_factories_build_spectral_layers(self):
        conv = discriminator_blocks.spectral_conv(4, 3, "conv")
        dense = discriminator_blocks.spectral_dense(4, "dense")
        self.assertIsInstance(conv, spectral_normalization.SpectralConv2D)
        self.assertIsInstance(dense, spectral_normalization.SpectralDense)
        self.assertEqual((conv.filters, conv.kernel_size, conv.padding), (4, (3, 3), "same"))
        self.assertEqual(dense.units, 4)
        for layer in (conv, dense):
            self.assertIsInstance(layer.kernel_initializer, keras.initializers.GlorotNormal)
            self.assertTrue(layer.use_bias)

    def test_training_calls_drive_top_singular_value_to_one(self):
        conv = discriminator_blocks.spectral_conv(6, 3, "conv")
        x = _random([1, 5, 5, 4], 3)
        conv(x, training=False)
        conv.kernel.assign(conv.kernel * 10.0)
        for _ in range(30):
            conv(x, training=True)
        kernel = _normalized_kernel(conv).reshape(-1, 6)
        self.assertAllClose(np.linalg.svd(kernel, compute_uv=False)[0], 1.0, atol=1e-3)

    def test_inference_calls_leave_kernel_and_u_unchanged(self):
        dense = discriminator_blocks.spectral_dense(3, "dense")
        x = _random([2, 4], 4)
        dense(x, training=False)
        before = [np.array(v) for v in dense.weights]
        dense(x, training=False)
        for variable, value in zip(dense.weights, before):
            self.assertAllEqual(variable, value)
        dense(x, training=True)
        self.assertAllEqual(dense.kernel, before[0])  # training only updates u
        self.assertNotAllClose(dense.vector_u, before[2])
