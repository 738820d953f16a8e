"""Exponential moving average of the generator's weights (SPEC §3).

    θ_ema ← decay · θ_ema + (1 − decay) · θ        for every trainable weight θ of G
    s_ema ← s                                       for every non-trainable weight s of G

With `rampup`, the decay of update t (t = 1, 2, ...) is min(decay, (1 + t) / (10 + t)), the
schedule of `tf.train.ExponentialMovingAverage(num_updates=t)`: G_ema follows G closely early in
training instead of staying near the random initialisation for the first ~1/(1 − decay) steps,
which matters for short runs. The paper's schedule is the constant decay (rampup off).

The EMA generator G_ema is a second instance of the generator architecture. Only G's trainable
weights are averaged; its non-trainable weights (the batch-norm moving mean and variance) are
copied, so G_ema shares G's batch-norm statistics, as in the published code. G_ema is therefore
self-contained and can be checkpointed, restored and exported on its own.

Under `tf.distribute` the update may be called inside a replica context (from
`XMCGAN.train_step` under `strategy.run`); it then runs once per replica through
`merge_call` + `extended.update`, the way Keras optimizers update mirrored variables, so every
replica's copy of G_ema follows its own copy of G.
"""

from __future__ import annotations

import keras
import tensorflow as tf


def _tf_variable(variable):
    """The `tf.Variable` (or distributed variable) behind a Keras variable."""
    return variable.value if isinstance(variable, keras.Variable) else variable


class ExponentialMovingAverage:
    """Keeps `target`'s weights an exponential moving average of `source`'s.

    Args:
      source: the trained model (G); must be built.
      target: a model of the same architecture (G_ema); must be built.
      decay: EMA decay in [0, 1) (0.999 in the paper).
      rampup: cap the decay of update t at (1 + t) / (10 + t); `update` then needs `step`.

    Raises:
      ValueError: `decay` is out of range, or the two models' weights differ in number or shape.
    """

    def __init__(self, source: keras.Model, target: keras.Model, decay: float = 0.999,
                 rampup: bool = False):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        if not source.trainable_weights:
            raise ValueError(f"EMA: {source.name} has no trainable weights; build it first")
        self.decay = float(decay)
        self.rampup = bool(rampup)
        self._trainable = self._pairs(source.trainable_weights, target.trainable_weights,
                                      "trainable", source, target)
        self._non_trainable = self._pairs(source.non_trainable_weights,
                                          target.non_trainable_weights, "non-trainable",
                                          source, target)

    @staticmethod
    def _pairs(source_weights, target_weights, kind, source, target):
        if len(source_weights) != len(target_weights):
            raise ValueError(
                f"EMA: {source.name} has {len(source_weights)} {kind} weights but {target.name} "
                f"has {len(target_weights)}; are both built from the same config?")
        for s, t in zip(source_weights, target_weights):
            if tuple(s.shape) != tuple(t.shape):
                raise ValueError(f"EMA: weight {s.path} has shape {tuple(s.shape)} but its "
                                 f"counterpart {t.path} has shape {tuple(t.shape)}")
        return [(_tf_variable(s), _tf_variable(t)) for s, t in zip(source_weights, target_weights)]

    def initialize(self) -> None:
        """Copies every weight of the source into the target (θ_ema ← θ)."""
        self._run(lambda target, source: target.assign(source), self._trainable)
        self._run(lambda target, source: target.assign(source), self._non_trainable)

    def decay_at(self, step: tf.Tensor | int | None = None) -> tf.Tensor:
        """The decay of update `step` (1-based): `decay`, capped by the ramp-up if enabled.

        Raises:
          ValueError: ramp-up is enabled and no step is given.
        """
        if not self.rampup:
            return tf.constant(self.decay, tf.float32)
        if step is None:
            raise ValueError("EMA with rampup=True needs the update's step")
        step = tf.cast(step, tf.float32)
        return tf.minimum(self.decay, (1.0 + step) / (10.0 + step))

    def update(self, step: tf.Tensor | int | None = None) -> None:
        """One EMA step of the trainable weights; copies the non-trainable weights.

        Args:
          step: the update's 1-based count (e.g. G's optimizer iterations after its step); used
            only with `rampup`.
        """
        decay = self.decay_at(step)

        def average(target, source):
            return target.assign(decay * target + (1.0 - decay) * source)

        self._run(average, self._trainable)
        self._run(lambda target, source: target.assign(source), self._non_trainable)

    def _run(self, fn, pairs) -> None:
        def apply(strategy):
            for source, target in pairs:
                strategy.extended.update(target, fn, args=(source,), group=False)

        context = tf.distribute.get_replica_context()
        if context is None:  # Cross-replica context.
            apply(tf.distribute.get_strategy())
        else:
            context.merge_call(apply)
