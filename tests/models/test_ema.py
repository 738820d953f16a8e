"""Tests of xmcgan_tf.models.ema: EMA of trainable weights, copied batch-norm statistics."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from xmcgan_tf.models import ema


def _model(name: str, units: int = 3) -> keras.Model:
    inputs = keras.Input([4])
    x = keras.layers.Dense(units, name="dense")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    return keras.Model(inputs, x, name=name)


def _randomize(model: keras.Model, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for w in model.weights:
        w.assign(rng.normal(size=w.shape).astype(np.float32))


class EmaTest(tf.test.TestCase):

    def setUp(self):
        super().setUp()
        self.source, self.target = _model("source"), _model("target")
        _randomize(self.source, 0)
        _randomize(self.target, 1)

    def test_initialize_copies_every_weight(self):
        ema.ExponentialMovingAverage(self.source, self.target, 0.9).initialize()
        for s, t in zip(self.source.weights, self.target.weights):
            self.assertAllEqual(s.numpy(), t.numpy())

    def test_update_averages_trainable_and_copies_statistics(self):
        average = ema.ExponentialMovingAverage(self.source, self.target, decay=0.75)
        before_target = [w.numpy() for w in self.target.trainable_weights]
        source = [w.numpy() for w in self.source.trainable_weights]
        average.update()
        for t, old, s in zip(self.target.trainable_weights, before_target, source):
            self.assertAllClose(t.numpy(), 0.75 * old + 0.25 * s, atol=1e-6)
        self.assertLen(self.source.non_trainable_weights, 2)  # moving mean and variance
        for s, t in zip(self.source.non_trainable_weights, self.target.non_trainable_weights):
            self.assertAllEqual(s.numpy(), t.numpy())

    def test_update_in_tf_function_converges_to_source(self):
        average = ema.ExponentialMovingAverage(self.source, self.target, decay=0.5)
        step = tf.function(average.update)
        for _ in range(40):
            step()
        for s, t in zip(self.source.weights, self.target.weights):
            self.assertAllClose(s.numpy(), t.numpy(), atol=1e-5)

    def test_rampup_caps_the_decay_of_early_updates(self):
        average = ema.ExponentialMovingAverage(self.source, self.target, decay=0.9, rampup=True)
        for step in (1, 5, 80, 1000):
            self.assertAllClose(average.decay_at(step), min(0.9, (1 + step) / (10 + step)))
        before_target = [w.numpy() for w in self.target.trainable_weights]
        source = [w.numpy() for w in self.source.trainable_weights]
        average.update(step=tf.constant(2, tf.int64))  # decay 3 / 12
        for t, old, s in zip(self.target.trainable_weights, before_target, source):
            self.assertAllClose(t.numpy(), 0.25 * old + 0.75 * s, atol=1e-6)

    def test_rampup_needs_the_step_and_constant_decay_ignores_it(self):
        with pytest.raises(ValueError, match="step"):
            ema.ExponentialMovingAverage(self.source, self.target, 0.9, rampup=True).update()
        constant = ema.ExponentialMovingAverage(self.source, self.target, 0.9)
        self.assertAllClose(constant.decay_at(1), 0.9)

    def test_mismatched_models_raise(self):
        with self.assertRaisesRegex(ValueError, "shape"):
            ema.ExponentialMovingAverage(self.source, _model("wide", units=5))

    def test_decay_out_of_range_raises(self):
        for decay in (-0.1, 1.0):
            with pytest.raises(ValueError, match="decay"):
                ema.ExponentialMovingAverage(self.source, self.target, decay)
