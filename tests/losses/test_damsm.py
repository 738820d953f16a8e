"""Tests of xmcgan_tf.losses.damsm (DAMSM word and sentence losses, AttnGAN and XMC-GAN forms)."""

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from tests.losses import numpy_reference
from xmcgan_tf.losses import contrastive
from xmcgan_tf.losses import damsm
from xmcgan_tf.losses import word_contrastive


def _inputs(batch: int, regions: int, tokens: int, dim: int, seed: int):
    rng = np.random.RandomState(seed)
    r = rng.randn(batch, regions, dim).astype(np.float32)
    w = rng.randn(batch, tokens, dim).astype(np.float32)
    num_words = rng.randint(1, tokens + 1, size=batch)
    mask = (np.arange(tokens)[None, :] < num_words[:, None]).astype(np.float32)
    return r, w, mask, num_words


class SameClassMaskTest(tf.test.TestCase):

    def test_masks_equal_known_labels_off_the_diagonal_only(self):
        mask = damsm.same_class_mask(tf.constant([3, -1, 3, -1, 5], tf.int64))
        expected = np.zeros((5, 5), bool)
        expected[0, 2] = expected[2, 0] = True  # -1 never matches, not even another -1
        self.assertAllEqual(mask, expected)

    def test_none_is_none(self):
        self.assertIsNone(damsm.same_class_mask(None))


class AttnganWordRegionSimilarityTest(tf.test.TestCase, parameterized.TestCase):

    @parameterized.parameters((2, 4, 3, 4, 4.0, 5.0, 0), (3, 5, 5, 3, 4.0, 5.0, 1),
                              (4, 6, 4, 5, 2.0, 3.0, 2))
    def test_matches_numpy(self, batch, regions, tokens, dim, gamma1, gamma2, seed):
        r, w, mask, num_words = _inputs(batch, regions, tokens, dim, seed)
        similarity = damsm.attngan_word_region_similarity(r, w, mask, gamma1, gamma2)
        self.assertEqual(similarity.dtype, tf.float32)
        self.assertEqual(similarity.shape, (batch, batch))
        expected = numpy_reference.attngan_word_region_similarity(r, w, num_words, gamma1, gamma2)
        self.assertAllClose(similarity, expected, rtol=1e-5, atol=1e-5)

    def test_differs_from_the_xmcgan_score(self):
        r, w, mask, _ = _inputs(3, 4, 4, 3, 3)
        attngan = damsm.attngan_word_region_similarity(r, w, mask, 4.0, 5.0)
        xmcgan = word_contrastive.word_region_similarity(r, w, mask, 4.0, 5.0)
        self.assertGreater(np.max(np.abs(attngan - 5.0 * xmcgan)), 1e-2)

    def test_a_single_word_gets_a_uniform_word_softmax(self):
        # One real word: the word softmax is 1 for every region, so the attention over regions
        # is uniform and c = the mean region; R = γ2 cos(mean region, word).
        r, w, _, _ = _inputs(1, 5, 3, 4, 4)
        mask = np.array([[1.0, 0.0, 0.0]], np.float32)
        similarity = damsm.attngan_word_region_similarity(r, w, mask, 4.0, 5.0)
        mean = r[0].mean(axis=0)
        expected = 5.0 * mean @ w[0, 0] / (np.linalg.norm(mean) * np.linalg.norm(w[0, 0]))
        self.assertAllClose(similarity, [[expected]], atol=1e-5)


class DamsmWordLossTest(tf.test.TestCase, parameterized.TestCase):

    @parameterized.parameters((2, 4, 3, 4, 0), (3, 4, 5, 3, 1), (4, 6, 4, 5, 2))
    def test_attngan_form_matches_numpy_with_damsm_gammas(self, batch, regions, tokens, dim,
                                                          seed):
        r, w, mask, num_words = _inputs(batch, regions, tokens, dim, seed)
        loss = damsm.damsm_word_loss(r, w, mask)  # the AttnGAN form is the default
        self.assertEqual(loss.dtype, tf.float32)
        self.assertEqual(loss.shape, ())
        self.assertAllClose(loss, numpy_reference.attngan_damsm_word(r, w, num_words),
                            rtol=1e-5, atol=1e-5)

    @parameterized.parameters((4, 4, 3, 4, 0, [0, 1, 0, -1]), (5, 4, 4, 3, 1, [2, 2, 2, -1, -1]),
                              (6, 3, 4, 5, 2, [1, 1, 2, 2, 3, -1]))
    def test_attngan_form_with_class_masking_matches_numpy(self, batch, regions, tokens, dim,
                                                           seed, labels):
        r, w, mask, num_words = _inputs(batch, regions, tokens, dim, seed)
        loss = damsm.damsm_word_loss(r, w, mask, labels=tf.constant(labels, tf.int64))
        self.assertAllClose(loss, numpy_reference.attngan_damsm_word(r, w, num_words, labels),
                            rtol=1e-5, atol=1e-5)
        self.assertNotAllClose(loss, damsm.damsm_word_loss(r, w, mask), atol=1e-4)

    @parameterized.parameters((2, 4, 3, 4, 0), (3, 4, 5, 3, 1), (4, 6, 4, 5, 2))
    def test_xmcgan_form_matches_numpy(self, batch, regions, tokens, dim, seed):
        r, w, mask, num_words = _inputs(batch, regions, tokens, dim, seed)
        loss = damsm.damsm_word_loss(r, w, mask, form="xmcgan")
        self.assertAllClose(loss, numpy_reference.word_contrastive(r, w, num_words, 4.0, 5.0, 10.0),
                            rtol=1e-5, atol=1e-5)

    def test_xmcgan_form_is_the_word_contrastive_loss(self):
        r, w, mask, _ = _inputs(3, 4, 4, 3, 3)
        self.assertAllClose(damsm.damsm_word_loss(r, w, mask, form="xmcgan"),
                            word_contrastive.word_contrastive_loss(r, w, mask, gamma1=4.0,
                                                                   gamma2=5.0, gamma3=10.0))
        self.assertAllClose(damsm.damsm_word_loss(r, w, mask, gamma1=5.0, gamma3=50.0,
                                                  form="xmcgan"),
                            word_contrastive.word_contrastive_loss(r, w, mask))

    def test_xmcgan_form_with_class_masking_matches_numpy(self):
        r, w, mask, num_words = _inputs(4, 4, 3, 4, 5)
        labels = [1, -1, 1, 0]
        expected = numpy_reference.masked_symmetric_cross_entropy(
            10.0 * numpy_reference.word_region_similarity(r, w, num_words, 4.0, 5.0), labels)
        self.assertAllClose(damsm.damsm_word_loss(r, w, mask, labels=labels, form="xmcgan"),
                            expected, rtol=1e-5, atol=1e-5)

    @parameterized.parameters("attngan", "xmcgan")
    def test_unknown_labels_do_not_mask(self, form):
        r, w, mask, _ = _inputs(4, 4, 3, 4, 6)
        self.assertAllClose(damsm.damsm_word_loss(r, w, mask, labels=[-1] * 4, form=form),
                            damsm.damsm_word_loss(r, w, mask, form=form), atol=1e-6)

    @parameterized.parameters("attngan", "xmcgan")
    def test_one_class_masks_every_negative_but_never_the_positive(self, form):
        r, w, mask, _ = _inputs(4, 4, 3, 4, 7)
        self.assertAllClose(damsm.damsm_word_loss(r, w, mask, labels=[2] * 4, form=form), 0.0,
                            atol=1e-6)

    @parameterized.parameters("attngan", "xmcgan")
    def test_padding_does_not_change_the_loss(self, form):
        r, w, mask, _ = _inputs(3, 4, 3, 3, 4)
        w_padded = np.concatenate([w, np.full((3, 2, 3), -9.0, np.float32)], axis=1)
        mask_padded = np.concatenate([mask, np.zeros((3, 2), np.float32)], axis=1)
        self.assertAllClose(damsm.damsm_word_loss(r, w, mask, form=form),
                            damsm.damsm_word_loss(r, w_padded, mask_padded, form=form), atol=1e-6)

    def test_non_finite_padding_cannot_reach_the_result(self):
        r, w, mask, _ = _inputs(3, 4, 3, 3, 8)
        w_padded = np.concatenate([w, np.full((3, 2, 3), np.nan, np.float32)], axis=1)
        mask_padded = np.concatenate([mask, np.zeros((3, 2), np.float32)], axis=1)
        self.assertAllClose(damsm.damsm_word_loss(r, w, mask),
                            damsm.damsm_word_loss(r, w_padded, mask_padded), atol=1e-6)

    @parameterized.parameters("attngan", "xmcgan")
    def test_gradients_finite_and_bfloat16(self, form):
        r, w, mask, _ = _inputs(3, 4, 4, 3, 5)
        r_var = tf.Variable(r)
        with tf.GradientTape() as tape:
            loss = damsm.damsm_word_loss(r_var, tf.constant(w, tf.bfloat16), mask,
                                         labels=[0, 0, -1], form=form)
        self.assertEqual(loss.dtype, tf.float32)
        self.assertTrue(np.all(np.isfinite(tape.gradient(loss, r_var))))

    def test_bad_form_raises(self):
        r, w, mask, _ = _inputs(2, 3, 3, 3, 9)
        with self.assertRaisesRegex(ValueError, "attngan"):
            damsm.damsm_word_loss(r, w, mask, form="attn")


class DamsmSentenceLossTest(tf.test.TestCase, parameterized.TestCase):

    @parameterized.parameters((2, 3, 10.0, 0), (3, 4, 10.0, 1), (4, 5, 3.0, 2))
    def test_matches_numpy(self, batch, dim, gamma3, seed):
        rng = np.random.RandomState(seed)
        image = rng.randn(batch, dim).astype(np.float32)
        sentence = rng.randn(batch, dim).astype(np.float32)
        loss = damsm.damsm_sentence_loss(image, sentence, gamma3=gamma3)
        self.assertEqual(loss.dtype, tf.float32)
        # Cosine logits times γ3, symmetric CE, computed independently.
        logits = gamma3 * numpy_reference.cosine_logits(image, sentence, 1.0)
        self.assertAllClose(loss, numpy_reference.symmetric_cross_entropy(logits),
                            rtol=1e-5, atol=1e-5)

    @parameterized.parameters(([0, 1, 0, -1], 0), ([2, 2, 2, -1, -1], 1),
                              ([1, 1, 2, 2, 3, -1], 2))
    def test_class_masking_matches_numpy(self, labels, seed):
        rng = np.random.RandomState(seed)
        image = rng.randn(len(labels), 4).astype(np.float32)
        sentence = rng.randn(len(labels), 4).astype(np.float32)
        loss = damsm.damsm_sentence_loss(image, sentence, labels=tf.constant(labels))
        self.assertAllClose(loss, numpy_reference.damsm_sentence(image, sentence, labels),
                            rtol=1e-5, atol=1e-5)
        self.assertNotAllClose(loss, damsm.damsm_sentence_loss(image, sentence), atol=1e-4)

    def test_unknown_labels_do_not_mask_and_one_class_gives_zero(self):
        rng = np.random.RandomState(3)
        image, sentence = rng.randn(4, 5), rng.randn(4, 5)
        self.assertAllClose(damsm.damsm_sentence_loss(image, sentence, labels=[-1] * 4),
                            damsm.damsm_sentence_loss(image, sentence), atol=1e-6)
        self.assertAllClose(damsm.damsm_sentence_loss(image, sentence, labels=[7] * 4), 0.0,
                            atol=1e-6)

    def test_default_is_temperature_0_1_contrastive(self):
        rng = np.random.RandomState(6)
        image, sentence = rng.randn(3, 4), rng.randn(3, 4)
        self.assertAllClose(damsm.damsm_sentence_loss(image, sentence),
                            contrastive.symmetric_contrastive_loss(image, sentence, 0.1),
                            atol=1e-6)

    def test_symmetric_and_bfloat16(self):
        rng = np.random.RandomState(7)
        image = tf.constant(rng.randn(3, 4), tf.bfloat16)
        sentence = tf.constant(rng.randn(3, 4), tf.bfloat16)
        loss = damsm.damsm_sentence_loss(image, sentence, labels=[1, 1, -1])
        self.assertEqual(loss.dtype, tf.float32)
        self.assertAllClose(loss, damsm.damsm_sentence_loss(sentence, image, labels=[1, 1, -1]),
                            atol=1e-6)

    def test_bad_gamma_raises(self):
        with self.assertRaisesRegex(ValueError, "gamma3"):
            damsm.damsm_sentence_loss(np.ones((2, 3)), np.ones((2, 3)), gamma3=0.0)
