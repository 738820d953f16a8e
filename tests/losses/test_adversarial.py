"""Tests of xmcgan_tf.losses.adversarial (hinge losses)."""

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from tests.losses import numpy_reference
from xmcgan_tf.losses import adversarial


class HingeLossTest(tf.test.TestCase, parameterized.TestCase):

    def test_hand_computed_constants(self):
        real = np.array([2.0, 0.5, -1.0], np.float32)  # relu(1 - D): 0, 0.5, 2
        fake = np.array([-2.0, 0.0, 1.5], np.float32)  # relu(1 + D): 0, 1, 2.5
        self.assertAllClose(adversarial.hinge_discriminator_loss(real, fake), 2.5 / 3 + 3.5 / 3)
        self.assertAllClose(adversarial.hinge_generator_loss(fake), -(-2.0 + 0.0 + 1.5) / 3)

    @parameterized.parameters((2, 2, 0), (3, 3, 1), (4, 2, 2))
    def test_matches_numpy(self, num_real, num_fake, seed):
        rng = np.random.RandomState(seed)
        real = rng.randn(num_real).astype(np.float32) * 2
        fake = rng.randn(num_fake).astype(np.float32) * 2
        d_loss = adversarial.hinge_discriminator_loss(real, fake)
        g_loss = adversarial.hinge_generator_loss(fake)
        for loss in (d_loss, g_loss):
            self.assertEqual(loss.dtype, tf.float32)
            self.assertEqual(loss.shape, ())
        self.assertAllClose(d_loss, numpy_reference.hinge_discriminator(real, fake), atol=1e-6)
        self.assertAllClose(g_loss, numpy_reference.hinge_generator(fake), atol=1e-6)

    def test_confident_discriminator_has_zero_loss(self):
        self.assertAllClose(adversarial.hinge_discriminator_loss([1.0, 3.0], [-1.0, -5.0]), 0.0)

    def test_gradients(self):
        real = tf.Variable([2.0, 0.5, -1.0])
        fake = tf.Variable([-2.0, 0.0, 1.5])
        with tf.GradientTape(persistent=True) as tape:
            d_loss = adversarial.hinge_discriminator_loss(real, fake)
            g_loss = adversarial.hinge_generator_loss(fake)
        grad_real, grad_fake = tape.gradient(d_loss, [real, fake])
        self.assertAllClose(grad_real, [0.0, -1 / 3, -1 / 3])
        self.assertAllClose(grad_fake, [0.0, 1 / 3, 1 / 3])
        self.assertAllClose(tape.gradient(g_loss, fake), [-1 / 3] * 3)

    def test_bfloat16_inputs_give_float32(self):
        real = tf.constant([2.0, 0.5, -1.0], tf.bfloat16)
        fake = tf.constant([-2.0, 0.0, 1.5], tf.bfloat16)
        self.assertEqual(adversarial.hinge_discriminator_loss(real, fake).dtype, tf.float32)
        self.assertEqual(adversarial.hinge_generator_loss(fake).dtype, tf.float32)
        self.assertAllClose(adversarial.hinge_discriminator_loss(real, fake), 2.0)

    def test_bad_inputs_raise(self):
        with self.assertRaisesRegex(ValueError, r"real_logits must have shape \[B\]"):
            adversarial.hinge_discriminator_loss(tf.zeros([2, 1]), tf.zeros([2]))
        with self.assertRaisesRegex(ValueError, r"fake_logits must have shape \[B\]"):
            adversarial.hinge_generator_loss(tf.zeros([2, 1]))
        with self.assertRaisesRegex(TypeError, "floating-point"):
            adversarial.hinge_generator_loss(tf.constant([1, 2]))


class HardestMismatchTest(tf.test.TestCase):

    def test_hand_computed_case(self):
        # ψ = logit − φ·e(own): image 0: 3 − 1 = 2, image 1: 0 − 2 = −2.
        logits = np.array([3.0, 0.0], np.float32)
        features = np.array([[1.0, 0.0], [0.0, 2.0]], np.float32)
        own = np.array([[1.0, 5.0], [7.0, 1.0]], np.float32)
        bank = np.array([[0.5, 0.0], [3.0, 1.0], [0.0, -1.0]], np.float32)
        # φ·bank: image 0 → [0.5, 3, 0], image 1 → [0, 2, −2].
        got = adversarial.hardest_mismatch_logits(logits, features, own, bank)
        self.assertAllClose(got, [2.0 + 3.0, -2.0 + 2.0])
        excluded = np.array([[False, True, False], [False, False, False]])
        got = adversarial.hardest_mismatch_logits(logits, features, own, bank, excluded)
        self.assertAllClose(got, [2.0 + 0.5, -2.0 + 2.0])
        self.assertAllClose(adversarial.mismatch_hinge_loss(got), (3.5 + 1.0) / 2)

    def test_matches_the_discriminator_on_the_hardest_caption(self):
        rng = np.random.default_rng(3)
        features = rng.normal(size=[4, 6]).astype(np.float32)
        psi = rng.normal(size=[4]).astype(np.float32)
        own = rng.normal(size=[4, 6]).astype(np.float32)
        bank = rng.normal(size=[9, 6]).astype(np.float32)
        logits = psi + (features * own).sum(-1)
        hardest = (features @ bank.T).argmax(-1)
        expected = psi + (features * bank[hardest]).sum(-1)
        self.assertAllClose(adversarial.hardest_mismatch_logits(logits, features, own, bank),
                            expected, rtol=1e-5)


class CounterfactualLogitsTest(tf.test.TestCase):

    def test_hand_computed_case(self):
        # ψ = logit − φ·e(own): image 0: 3 − 1 = 2, image 1: 0 − 2 = −2.
        logits = np.array([3.0, 0.0], np.float32)
        features = np.array([[1.0, 0.0], [0.0, 2.0]], np.float32)
        own = np.array([[1.0, 5.0], [7.0, 1.0]], np.float32)
        counterfactual = np.array([[-4.0, 9.0], [1.0, 0.5]], np.float32)
        # φ·e(s'): image 0 → −4, image 1 → 1.
        got = adversarial.counterfactual_logits(logits, features, own, counterfactual)
        self.assertAllClose(got, [2.0 - 4.0, -2.0 + 1.0])
        self.assertAllClose(adversarial.mismatch_hinge_loss(got), (0.0 + 0.0) / 2)

    def test_matches_the_projection_logit_of_the_counterfactual_caption(self):
        rng = np.random.default_rng(4)
        features = rng.normal(size=[5, 6]).astype(np.float32)
        psi = rng.normal(size=[5]).astype(np.float32)
        own = rng.normal(size=[5, 6]).astype(np.float32)
        counterfactual = rng.normal(size=[5, 6]).astype(np.float32)
        logits = psi + (features * own).sum(-1)
        self.assertAllClose(
            adversarial.counterfactual_logits(logits, features, own, counterfactual),
            psi + (features * counterfactual).sum(-1), rtol=1e-5)
