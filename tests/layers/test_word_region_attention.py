"""Tests of xmcgan_tf.layers.word_region_attention against a NumPy reference."""

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from tests import layer_test_helper
from xmcgan_tf.layers import word_region_attention

MASK = np.array([[1, 1, 1, 0], [1, 1, 0, 0]], np.float32)  # [B=2, T=4]


def _inputs(seed=0):
    rng = np.random.RandomState(seed)
    regions = rng.randn(2, 3, 5).astype(np.float32)  # [B, R, D]
    words = rng.randn(2, 4, 5).astype(np.float32)  # [B, T, D]
    return regions, words


def _numpy_attention(regions, words, mask, sharpness):
    regions = regions / np.linalg.norm(regions, axis=-1, keepdims=True)
    words = words / np.linalg.norm(words, axis=-1, keepdims=True)
    logits = sharpness * np.einsum("brd,btd->brt", regions, words)
    logits = np.where(mask[:, None, :] > 0, logits, -np.inf)
    alpha = np.exp(logits - logits.max(axis=-1, keepdims=True))
    alpha /= alpha.sum(axis=-1, keepdims=True)
    return np.einsum("brt,btd->brd", alpha, words), alpha


class WordRegionAttentionTest(tf.test.TestCase, parameterized.TestCase):

    def test_layer_contract(self):
        regions, words = _inputs()
        layer_test_helper.run_layer_test(
            self, word_region_attention.WordRegionAttention,
            {"sharpness": 15.0, "name": "attention"}, inputs=[regions, words, MASK],
            expected_output_shape=((2, 3, 5), (2, 3, 4)), expected_num_trainable_weights=0,
            expected_bfloat16_output_dtypes=["float32", "float32"])

    @parameterized.parameters(1.0, 5.0, 15.0)
    def test_matches_numpy(self, sharpness):
        regions, words = _inputs(1)
        context, alpha = word_region_attention.WordRegionAttention(sharpness)(
            regions, words, MASK)
        want_context, want_alpha = _numpy_attention(regions, words, MASK, sharpness)
        self.assertAllClose(alpha, want_alpha, rtol=1e-5, atol=1e-6)
        self.assertAllClose(context, want_context, rtol=1e-5, atol=1e-6)

    def test_masked_words_get_zero_weight(self):
        regions, words = _inputs(2)
        _, alpha = word_region_attention.WordRegionAttention(15.0)(regions, words, MASK)
        alpha = np.array(alpha)
        self.assertAllEqual(alpha[0, :, 3], np.zeros(3))
        self.assertAllEqual(alpha[1, :, 2:], np.zeros((3, 2)))
        self.assertAllClose(alpha.sum(axis=-1), np.ones((2, 3)), atol=1e-6)

    def test_padded_word_values_do_not_change_context(self):
        regions, words = _inputs(3)
        altered = words.copy()
        altered[0, 3] = 100.0
        altered[1, 2:] = -7.0
        layer = word_region_attention.WordRegionAttention(15.0)
        self.assertAllClose(layer(regions, words, MASK)[0], layer(regions, altered, MASK)[0])

    def test_context_is_normalised_aligned_word_when_sharp(self):
        words = np.array([[[3.0, 0.0], [0.0, 2.0]]], np.float32)  # [1, T=2, D=2]
        regions = np.array([[[5.0, 0.1], [0.1, 0.5]]], np.float32)  # [1, R=2, D=2]
        context, _ = word_region_attention.WordRegionAttention(100.0)(
            regions, words, np.ones([1, 2], np.float32))
        self.assertAllClose(context, [[[1.0, 0.0], [0.0, 1.0]]], atol=1e-4)

    def test_inputs_not_autocast_under_mixed_policy(self):
        layer = word_region_attention.WordRegionAttention(15.0, dtype="mixed_bfloat16")
        regions, words = _inputs(4)
        context, alpha = layer(regions, words, MASK)
        want_context, want_alpha = _numpy_attention(regions, words, MASK, 15.0)
        self.assertEqual(context.dtype, tf.float32)
        self.assertAllClose(alpha, want_alpha, rtol=1e-5, atol=1e-6)
        self.assertAllClose(context, want_context, rtol=1e-5, atol=1e-6)
