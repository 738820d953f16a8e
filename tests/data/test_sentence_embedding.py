"""Tests of xmcgan_tf.data.sentence_embedding against numpy."""

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from xmcgan_tf.data import sentence_embedding


def _numpy_sentence(words: np.ndarray, num_tokens: np.ndarray, method: str) -> np.ndarray:
    """Loops over captions: words [N, T, D], num_tokens [N] -> [N, D]."""
    out = []
    for w, n in zip(words, num_tokens):
        if method == "official":
            out.append(w.sum(axis=0) / n)
        elif method == "masked_mean":
            out.append(w[:n].mean(axis=0))
        else:
            out.append(w[0])
    return np.stack(out)


class SentenceEmbeddingTest(tf.test.TestCase, parameterized.TestCase):

    @parameterized.parameters("official", "masked_mean", "cls")
    def test_matches_numpy_with_batch_dims(self, method):
        rng = np.random.default_rng(0)
        words = rng.standard_normal((2, 3, 5, 4)).astype(np.float32)  # [B1, B2, T, D]
        num_tokens = rng.integers(1, 6, size=(2, 3)).astype(np.int32)
        got = sentence_embedding.sentence_embedding(words, num_tokens, method)
        self.assertEqual(got.shape, (2, 3, 4))
        self.assertEqual(got.dtype, tf.float32)
        expected = _numpy_sentence(words.reshape(6, 5, 4), num_tokens.reshape(6), method)
        self.assertAllClose(got, expected.reshape(2, 3, 4), atol=1e-6)

    def test_methods_differ_when_padding_is_nonzero(self):
        words = np.arange(12, dtype=np.float32).reshape(3, 4)  # [T=3, D=4]
        official = sentence_embedding.sentence_embedding(words, 2, "official")
        masked = sentence_embedding.sentence_embedding(words, 2, "masked_mean")
        cls = sentence_embedding.sentence_embedding(words, 2, "cls")
        self.assertAllClose(official, (words[0] + words[1] + words[2]) / 2)
        self.assertAllClose(masked, (words[0] + words[1]) / 2)
        self.assertAllClose(cls, words[0])

    def test_masked_mean_ignores_padding_values(self):
        rng = np.random.default_rng(1)
        words = rng.standard_normal((2, 6, 3)).astype(np.float32)
        noisy = words.copy()
        noisy[:, 3:] += 100.0
        num_tokens = np.array([3, 2], np.int32)
        self.assertAllClose(sentence_embedding.sentence_embedding(words, num_tokens, "masked_mean"),
                            sentence_embedding.sentence_embedding(noisy, num_tokens, "masked_mean"))

    def test_in_graph_with_unknown_shapes(self):
        fn = tf.function(
            lambda w, n: sentence_embedding.sentence_embedding(w, n, "masked_mean"),
            input_signature=[tf.TensorSpec([None, None, 3]), tf.TensorSpec([None], tf.int32)])
        words = np.ones((2, 4, 3), np.float32)
        words[:, 2:] = 7.0
        self.assertAllClose(fn(words, np.array([2, 4], np.int32)), [[1.0] * 3, [4.0] * 3])

    def test_word_mask(self):
        self.assertAllEqual(sentence_embedding.word_mask(tf.constant([0, 2, 3]), 3),
                            [[0, 0, 0], [1, 1, 0], [1, 1, 1]])
        self.assertEqual(sentence_embedding.word_mask(tf.constant([1]), 3).dtype, tf.float32)

    def test_unknown_method_lists_allowed(self):
        with self.assertRaisesRegex(ValueError, "mean.*official.*masked_mean.*cls"):
            sentence_embedding.sentence_embedding(np.zeros((2, 3), np.float32), 1, "mean")


if __name__ == "__main__":
    tf.test.main()
