"""Tests of xmcgan_tf.losses.word_contrastive (S(b, i) and L_word)."""

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from tests.losses import numpy_reference
from xmcgan_tf.losses import word_contrastive


def _inputs(images: int, captions: int, regions: int, tokens: int, dim: int, seed: int):
    """Random regions [B, R, D], words [N, T, D], mask [N, T] and real-word counts [N]."""
    rng = np.random.RandomState(seed)
    region_features = rng.randn(images, regions, dim).astype(np.float32)
    words = rng.randn(captions, tokens, dim).astype(np.float32)
    num_words = rng.randint(1, tokens + 1, size=captions)
    num_words[0] = tokens  # one full-length caption
    mask = (np.arange(tokens)[None, :] < num_words[:, None]).astype(np.float32)
    return region_features, words, mask, num_words


class WordRegionSimilarityTest(tf.test.TestCase, parameterized.TestCase):

    @parameterized.parameters((3, 2, 4, 4, 5, 5.0, 5.0, 0), (2, 4, 6, 3, 3, 4.0, 5.0, 1),
                              (4, 4, 4, 5, 2, 1.0, 10.0, 2))
    def test_matches_numpy(self, images, captions, regions, tokens, dim, gamma1, gamma2, seed):
        r, w, mask, num_words = _inputs(images, captions, regions, tokens, dim, seed)
        similarity = word_contrastive.word_region_similarity(r, w, mask, gamma1, gamma2)
        self.assertEqual(similarity.dtype, tf.float32)
        self.assertEqual(similarity.shape, (images, captions))
        expected = numpy_reference.word_region_similarity(r, w, num_words, gamma1, gamma2)
        self.assertAllClose(similarity, expected, rtol=1e-5, atol=1e-5)

    def test_single_word_hand_computed(self):
        # One region, one word: α = 1, c = r̂, S = cos(w, r).
        r = np.array([[[3.0, 4.0]]], np.float32)
        w = np.array([[[4.0, 3.0]]], np.float32)
        similarity = word_contrastive.word_region_similarity(r, w, np.ones((1, 1), np.float32))
        self.assertAllClose(similarity, [[24.0 / 25.0]], atol=1e-6)

    def test_vectorised_graph_with_unknown_sizes(self):
        r, w, mask, num_words = _inputs(3, 2, 4, 4, 5, 3)
        fn = tf.function(word_contrastive.word_region_similarity, input_signature=[
            tf.TensorSpec([None, None, 5], tf.float32), tf.TensorSpec([None, None, 5], tf.float32),
            tf.TensorSpec([None, None], tf.float32)])
        self.assertAllClose(fn(r, w, mask),
                            numpy_reference.word_region_similarity(r, w, num_words, 5.0, 5.0),
                            rtol=1e-5, atol=1e-5)

    def test_invariant_to_positive_rescaling(self):
        r, w, mask, _ = _inputs(2, 3, 4, 4, 3, 4)
        rng = np.random.RandomState(5)
        r_scaled = r * rng.uniform(0.1, 10.0, size=(2, 4, 1)).astype(np.float32)
        w_scaled = w * rng.uniform(0.1, 10.0, size=(3, 4, 1)).astype(np.float32)
        self.assertAllClose(word_contrastive.word_region_similarity(r, w, mask),
                            word_contrastive.word_region_similarity(r_scaled, w_scaled, mask),
                            rtol=1e-5, atol=1e-5)

    def test_bool_and_int_masks(self):
        r, w, mask, _ = _inputs(2, 2, 3, 4, 3, 6)
        expected = word_contrastive.word_region_similarity(r, w, mask)
        self.assertAllClose(word_contrastive.word_region_similarity(r, w, mask > 0), expected)
        self.assertAllClose(word_contrastive.word_region_similarity(r, w, mask.astype(np.int32)),
                            expected)

    def test_bad_inputs_raise(self):
        r, w, mask, _ = _inputs(2, 2, 3, 4, 3, 7)
        with self.assertRaisesRegex(ValueError, "same D"):
            word_contrastive.word_region_similarity(r[..., :2], w, mask)
        with self.assertRaisesRegex(ValueError, r"word_mask must have shape \[N, T\]"):
            word_contrastive.word_region_similarity(r, w, mask[:, :3])
        with self.assertRaisesRegex(ValueError, "rank 3"):
            word_contrastive.word_region_similarity(r[0], w, mask)
        with self.assertRaisesRegex(ValueError, "gamma1"):
            word_contrastive.word_region_similarity(r, w, mask, gamma1=-1.0)
        empty = mask.copy()
        empty[1] = 0.0
        with self.assertRaisesRegex(tf.errors.InvalidArgumentError, "at least one real token"):
            word_contrastive.word_region_similarity(r, w, empty)


class WordContrastiveLossTest(tf.test.TestCase, parameterized.TestCase):

    @parameterized.parameters((2, 4, 3, 4, 0), (3, 4, 4, 5, 1), (4, 9, 5, 3, 2))
    def test_matches_numpy(self, batch, regions, tokens, dim, seed):
        r, w, mask, num_words = _inputs(batch, batch, regions, tokens, dim, seed)
        loss = word_contrastive.word_contrastive_loss(r, w, mask)
        self.assertEqual(loss.dtype, tf.float32)
        self.assertEqual(loss.shape, ())
        expected = numpy_reference.word_contrastive(r, w, num_words, 5.0, 5.0, 50.0)
        self.assertAllClose(loss, expected, rtol=1e-4, atol=1e-4)

    def test_custom_gammas_match_numpy(self):
        r, w, mask, num_words = _inputs(3, 3, 4, 4, 3, 10)
        loss = word_contrastive.word_contrastive_loss(r, w, mask, gamma1=2.0, gamma2=3.0,
                                                      gamma3=7.0)
        self.assertAllClose(loss, numpy_reference.word_contrastive(r, w, num_words, 2.0, 3.0, 7.0),
                            rtol=1e-5, atol=1e-5)

    def test_appended_padding_with_garbage_does_not_change_the_loss(self):
        r, w, mask, _ = _inputs(3, 3, 4, 3, 4, 11)
        garbage = np.random.RandomState(12).randn(3, 2, 4).astype(np.float32) * 1e3
        garbage[0, 0] = np.nan
        garbage[1, 1] = np.inf
        w_padded = np.concatenate([w, garbage], axis=1)
        mask_padded = np.concatenate([mask, np.zeros((3, 2), np.float32)], axis=1)
        self.assertAllClose(word_contrastive.word_contrastive_loss(r, w, mask),
                            word_contrastive.word_contrastive_loss(r, w_padded, mask_padded),
                            rtol=1e-6, atol=1e-6)
        self.assertAllClose(word_contrastive.word_region_similarity(r, w, mask),
                            word_contrastive.word_region_similarity(r, w_padded, mask_padded),
                            rtol=1e-6, atol=1e-6)

    def test_garbage_in_existing_padding_does_not_change_the_loss(self):
        r, w, mask, _ = _inputs(3, 3, 4, 5, 4, 13)
        self.assertLess(mask.sum(), mask.size)  # some padding exists
        w_garbage = np.where(mask[..., None] > 0, w, 77.0).astype(np.float32)
        self.assertAllClose(word_contrastive.word_contrastive_loss(r, w, mask),
                            word_contrastive.word_contrastive_loss(r, w_garbage, mask), atol=1e-6)

    def test_invariant_to_permuting_the_pairs(self):
        r, w, mask, _ = _inputs(4, 4, 3, 4, 3, 14)
        order = [3, 1, 0, 2]
        self.assertAllClose(word_contrastive.word_contrastive_loss(r, w, mask),
                            word_contrastive.word_contrastive_loss(r[order], w[order], mask[order]),
                            rtol=1e-5, atol=1e-5)

    def test_aligned_regions_and_words_give_near_zero_loss(self):
        # Image b's regions are exactly caption b's words; pairs use orthogonal subspaces.
        basis = np.eye(8, dtype=np.float32)
        r = np.stack([basis[0:2], basis[2:4], basis[4:6], basis[6:8]])  # [4, 2, 8]
        w = np.stack([basis[0:3], basis[2:5], basis[4:7], basis[6:8].tolist() + [basis[0]]])
        w = w.astype(np.float32)  # caption b has 2 real words, the third is padding
        mask = np.array([[1, 1, 0]] * 4, np.float32)
        loss = word_contrastive.word_contrastive_loss(r, w, mask)
        self.assertLess(float(loss), 1e-6)

    def test_gradients_are_finite_and_zero_on_padding(self):
        r, w, mask, _ = _inputs(3, 3, 4, 4, 3, 15)
        r_var, w_var = tf.Variable(r), tf.Variable(w)
        with tf.GradientTape() as tape:
            loss = word_contrastive.word_contrastive_loss(r_var, w_var, mask)
        grad_r, grad_w = tape.gradient(loss, [r_var, w_var])
        self.assertTrue(np.all(np.isfinite(grad_r)) and np.all(np.isfinite(grad_w)))
        self.assertGreater(float(tf.reduce_max(tf.abs(grad_r))), 0.0)
        self.assertAllEqual(grad_w.numpy()[mask == 0], np.zeros_like(w[mask == 0]))
        self.assertGreater(float(np.abs(grad_w.numpy()[mask > 0]).max()), 0.0)

    def test_bfloat16_inputs_give_float32(self):
        r, w, mask, num_words = _inputs(3, 3, 4, 4, 3, 16)
        r16, w16 = tf.constant(r, tf.bfloat16), tf.constant(w, tf.bfloat16)
        loss = word_contrastive.word_contrastive_loss(r16, w16, tf.constant(mask, tf.bfloat16))
        self.assertEqual(loss.dtype, tf.float32)
        expected = numpy_reference.word_contrastive(
            tf.cast(r16, tf.float32).numpy(), tf.cast(w16, tf.float32).numpy(), num_words,
            5.0, 5.0, 50.0)
        self.assertAllClose(loss, expected, rtol=1e-4, atol=1e-4)

    def test_global_negatives_outside_a_strategy_is_the_local_loss(self):
        r, w, mask, _ = _inputs(3, 3, 4, 4, 3, 17)
        self.assertAllClose(
            word_contrastive.word_contrastive_loss(r, w, mask, global_negatives=True),
            word_contrastive.word_contrastive_loss(r, w, mask), atol=1e-7)

    def test_unpaired_batch_raises(self):
        r, w, mask, _ = _inputs(3, 2, 4, 4, 3, 18)
        with self.assertRaisesRegex(ValueError, "pair row by row"):
            word_contrastive.word_contrastive_loss(r, w, mask)
        with self.assertRaisesRegex(ValueError, "gamma3"):
            word_contrastive.word_contrastive_loss(r[:2], w, mask, gamma3=0.0)
