"""Tests of xmcgan_tf.losses.distribution and of `global_negatives` under MirroredStrategy.

The strategy runs on two logical CPUs. Logical devices can only be configured before TensorFlow
initialises its devices, so this module configures them at import. If another module in the
same process initialised the devices first (one single process running the whole suite), the
strategy tests re-run this file in a fresh interpreter instead.
"""

import functools
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf


def _configure_two_logical_cpus() -> bool:
    """Splits the first CPU into two logical devices; True if two logical CPUs are available."""
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)
    except RuntimeError:  # devices already initialised by an earlier test module
        pass
    return len(tf.config.list_logical_devices("CPU")) >= 2


TWO_CPUS = _configure_two_logical_cpus()
_FRESH_PROCESS_ENV = "XMCGAN_LOSSES_DISTRIBUTION_FRESH_PROCESS"
if os.environ.get(_FRESH_PROCESS_ENV) and not TWO_CPUS:
    raise RuntimeError("could not configure two logical CPUs even in a fresh process")

from tests.losses import numpy_reference  # noqa: E402
from xmcgan_tf.losses import contrastive  # noqa: E402
from xmcgan_tf.losses import distribution  # noqa: E402
from xmcgan_tf.losses import word_contrastive  # noqa: E402

needs_two_cpus = pytest.mark.skipif(
    not TWO_CPUS, reason="devices were initialised before this module; see test_in_fresh_process")

LOCAL_BATCH = 3
_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@functools.lru_cache(maxsize=None)
def _strategy() -> tf.distribute.MirroredStrategy:
    # One strategy per process: collective instance keys restart with every new strategy, and
    # the process-wide collective executor rejects a reused key with a different shape.
    return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])


def _split(strategy: tf.distribute.Strategy, *arrays: np.ndarray):
    """Per-replica values: replica k gets rows [k·B, (k+1)·B) of each array."""
    def value_fn(context):
        start = context.replica_id_in_sync_group * LOCAL_BATCH
        return tuple(tf.constant(x[start:start + LOCAL_BATCH]) for x in arrays)
    return strategy.experimental_distribute_values_from_function(value_fn)


@pytest.mark.skipif(TWO_CPUS, reason="two logical CPUs are configured in this process")
def test_in_fresh_process():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **{_FRESH_PROCESS_ENV: "1"})
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
         __file__], cwd=_REPO_ROOT, env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]


def test_outside_a_strategy():
    loss = tf.constant(3.0)
    assert float(distribution.scale_for_replicas(loss)) == 3.0
    assert distribution.num_replicas() == 1
    assert int(distribution.replica_id()) == 0
    x = tf.reshape(tf.range(6.0), [3, 2])
    assert distribution.gather_replicas(x) is x


def test_scale_for_replicas_rejects_integers():
    with pytest.raises(TypeError, match="floating-point"):
        distribution.scale_for_replicas(tf.constant(3))


@needs_two_cpus
def test_scale_replica_id_and_gather_in_a_replica_context():
    strategy = _strategy()
    x = np.arange(12, dtype=np.float32).reshape(6, 2)

    @tf.function
    def step(values):
        def replica_fn(local):
            gathered = distribution.gather_replicas(local)
            return (distribution.scale_for_replicas(tf.constant(4.0)),
                    distribution.replica_id(), gathered)
        return strategy.run(replica_fn, args=values)

    scaled, ids, gathered = step(_split(strategy, x))
    assert [float(v) for v in strategy.experimental_local_results(scaled)] == [2.0, 2.0]
    assert [int(v) for v in strategy.experimental_local_results(ids)] == [0, 1]
    for value in strategy.experimental_local_results(gathered):
        np.testing.assert_array_equal(value.numpy(), x)
    with strategy.scope():
        assert float(distribution.scale_for_replicas(tf.constant(4.0))) == 2.0
        assert distribution.num_replicas() == 2


def _run_on_two_replicas(loss_fn, arrays, initial_weights):
    """Runs loss_fn(weights, *local_arrays, global_negatives) on each replica's slice.

    Args:
      loss_fn: the loss of the local slices given a list of weight variables.
      arrays: full-batch numpy inputs, split B = 3 rows per replica.
      initial_weights: numpy values of the weights (mirrored variables).

    Returns:
      (global_losses, local_losses, gradients): the per-replica losses with and without global
      negatives, and the sum over replicas of d scale_for_replicas(global loss)/d weights.
    """
    strategy = _strategy()
    with strategy.scope():
        weights = [tf.Variable(w) for w in initial_weights]

    @tf.function
    def step(values):
        def replica_fn(*local):
            with tf.GradientTape() as tape:
                global_loss = loss_fn(weights, *local, True)
                scaled = distribution.scale_for_replicas(global_loss)
            local_loss = loss_fn(weights, *local, False)
            return global_loss, local_loss, tape.gradient(scaled, weights)
        global_loss, local_loss, grads = strategy.run(replica_fn, args=values)
        summed = [strategy.reduce(tf.distribute.ReduceOp.SUM, g, axis=None) for g in grads]
        return global_loss, local_loss, summed

    global_loss, local_loss, summed = step(_split(strategy, *arrays))
    return ([float(v) for v in strategy.experimental_local_results(global_loss)],
            [float(v) for v in strategy.experimental_local_results(local_loss)],
            [g.numpy() for g in summed])


def _single_device_gradients(loss_fn, arrays, initial_weights):
    """Gradient of the full-batch loss on one device, without any gathering."""
    weights = [tf.Variable(w) for w in initial_weights]
    with tf.GradientTape() as tape:
        loss = loss_fn(weights, *[tf.constant(x) for x in arrays], False)
    return [g.numpy() for g in tape.gradient(loss, weights)]


@needs_two_cpus
def test_contrastive_global_negatives_value_and_gradients():
    rng = np.random.RandomState(2)
    x = rng.randn(2 * LOCAL_BATCH, 5).astype(np.float32)
    y = rng.randn(2 * LOCAL_BATCH, 6).astype(np.float32)
    initial = [rng.randn(5, 4).astype(np.float32), rng.randn(6, 4).astype(np.float32)]

    def loss_fn(weights, x_local, y_local, global_negatives):
        return contrastive.symmetric_contrastive_loss(
            tf.matmul(x_local, weights[0]), tf.matmul(y_local, weights[1]), 0.1,
            global_negatives=global_negatives)

    global_losses, local_losses, gradients = _run_on_two_replicas(loss_fn, (x, y), initial)
    a, b = x.astype(np.float64) @ initial[0], y.astype(np.float64) @ initial[1]
    full = numpy_reference.symmetric_contrastive(a, b, 0.1)
    np.testing.assert_allclose(np.mean(global_losses), full, rtol=1e-5)
    # Without global negatives each replica only sees its own half.
    halves = [numpy_reference.symmetric_contrastive(a[:3], b[:3], 0.1),
              numpy_reference.symmetric_contrastive(a[3:], b[3:], 0.1)]
    np.testing.assert_allclose(local_losses, halves, rtol=1e-5)
    assert abs(np.mean(local_losses) - full) > 1e-3
    # Gradients reach the other replica's examples through the all-gather.
    for got, want in zip(gradients, _single_device_gradients(loss_fn, (x, y), initial)):
        assert np.all(np.isfinite(got))
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@needs_two_cpus
def test_word_loss_global_negatives_value_and_gradients():
    rng = np.random.RandomState(3)
    regions = rng.randn(2 * LOCAL_BATCH, 4, 3).astype(np.float32)
    words = rng.randn(2 * LOCAL_BATCH, 4, 3).astype(np.float32)
    num_words = np.array([4, 2, 3, 1, 4, 2])
    mask = (np.arange(4)[None, :] < num_words[:, None]).astype(np.float32)
    initial = [rng.randn(3, 3).astype(np.float32)]

    def loss_fn(weights, r_local, w_local, m_local, global_negatives):
        return word_contrastive.word_contrastive_loss(
            tf.einsum("brd,de->bre", r_local, weights[0]), w_local, m_local, gamma3=10.0,
            global_negatives=global_negatives)

    arrays = (regions, words, mask)
    global_losses, _, gradients = _run_on_two_replicas(loss_fn, arrays, initial)
    full = numpy_reference.word_contrastive(regions.astype(np.float64) @ initial[0], words,
                                            num_words, 5.0, 5.0, 10.0)
    np.testing.assert_allclose(np.mean(global_losses), full, rtol=1e-4)
    want = _single_device_gradients(loss_fn, arrays, initial)[0]
    assert np.all(np.isfinite(gradients[0]))
    np.testing.assert_allclose(gradients[0], want, rtol=1e-4, atol=1e-5)
