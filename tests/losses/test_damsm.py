"""Tests of xmcgan_tf.losses.damsm (DAMSM word and sentence losses)."""

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


class DamsmWordLossTest(tf.test.TestCase, parameterized.TestCase):

    @parameterized.parameters((2, 4, 3, 4, 0), (3, 4, 5, 3, 1), (4, 6, 4, 5, 2))
    def test_matches_numpy_with_damsm_gammas(self, batch, regions, tokens, dim, seed):
        r, w, mask, num_words = _inputs(batch, regions, tokens, dim, seed)
        loss = damsm.damsm_word_loss(r, w, mask)
        self.assertEqual(loss.dtype, tf.float32)
        self.assertEqual(loss.shape, ())
        self.assertAllClose(loss, numpy_reference.word_contrastive(r, w, num_words, 4.0, 5.0, 10.0),
                            rtol=1e-5, atol=1e-5)

    def test_is_the_word_contrastive_loss_with_damsm_gammas(self):
        r, w, mask, _ = _inputs(3, 4, 4, 3, 3)
        self.assertAllClose(damsm.damsm_word_loss(r, w, mask),
                            word_contrastive.word_contrastive_loss(r, w, mask, gamma1=4.0,
                                                                   gamma2=5.0, gamma3=10.0))
        self.assertAllClose(damsm.damsm_word_loss(r, w, mask, gamma1=5.0, gamma3=50.0),
                            word_contrastive.word_contrastive_loss(r, w, mask))

    def test_padding_does_not_change_the_loss(self):
        r, w, mask, _ = _inputs(3, 4, 3, 3, 4)
        w_padded = np.concatenate([w, np.full((3, 2, 3), -9.0, np.float32)], axis=1)
        mask_padded = np.concatenate([mask, np.zeros((3, 2), np.float32)], axis=1)
        self.assertAllClose(damsm.damsm_word_loss(r, w, mask),
                            damsm.damsm_word_loss(r, w_padded, mask_padded), atol=1e-6)

    def test_gradients_finite_and_bfloat16(self):
        r, w, mask, _ = _inputs(3, 4, 4, 3, 5)
        r_var = tf.Variable(r)
        with tf.GradientTape() as tape:
            loss = damsm.damsm_word_loss(r_var, tf.constant(w, tf.bfloat16), mask)
        self.assertEqual(loss.dtype, tf.float32)
        self.assertTrue(np.all(np.isfinite(tape.gradient(loss, r_var))))


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
        loss = damsm.damsm_sentence_loss(image, sentence)
        self.assertEqual(loss.dtype, tf.float32)
        self.assertAllClose(loss, damsm.damsm_sentence_loss(sentence, image), atol=1e-6)

    def test_bad_gamma_raises(self):
        with self.assertRaisesRegex(ValueError, "gamma3"):
            damsm.damsm_sentence_loss(np.ones((2, 3)), np.ones((2, 3)), gamma3=0.0)
