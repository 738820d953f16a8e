"""MirroredStrategy over two logical CPUs: the same update as one device; train_lib under it.

Each check runs in a fresh Python process that configures two logical CPUs at import: a test
process may already have initialised TensorFlow's runtime (devices can then no longer be
configured), and collectives of strategies made by earlier tests in the same process may hold
the instance keys a new strategy reuses.
"""

import functools
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf


def _configure_two_cpus() -> bool:
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    except RuntimeError:  # The runtime is already initialised.
        pass
    return len(tf.config.list_logical_devices("CPU")) >= 2


CONFIGURED = _configure_two_cpus()
DEVICES = ["/cpu:0", "/cpu:1"]
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Imported after the device configuration on purpose.
from tests.training import tiny_dataset  # noqa: E402
from xmcgan_tf.models import generator_loading  # noqa: E402
from xmcgan_tf.models import xmcgan  # noqa: E402
from xmcgan_tf.networks import discriminator as discriminator_lib  # noqa: E402
from xmcgan_tf.networks import generator as generator_lib  # noqa: E402
from xmcgan_tf.training import summaries  # noqa: E402
from xmcgan_tf.training import train_config  # noqa: E402
from xmcgan_tf.training import train_lib  # noqa: E402

B, T, D, Z = 4, 5, 16, 8


def _run(check, *args) -> None:
    """Runs `check(*args)` in a fresh Python process."""
    code = (f"from tests.training import test_mirrored as m; assert m.CONFIGURED; "
            f"m.{check.__name__}(*{args!r})")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                            text=True, env={**os.environ, "PYTHONPATH": REPO})
    assert result.returncode == 0, result.stderr[-4000:]


def _batch() -> dict:
    rng = np.random.default_rng(0)
    num_words = rng.integers(2, T + 1, size=B)
    return {
        "image": tf.constant(rng.uniform(size=[B, 64, 64, 3]), tf.float32),
        "z": tf.constant(rng.normal(size=[B, Z]), tf.float32),
        "sentence": tf.constant(rng.normal(size=[B, D]), tf.float32),
        "words": tf.constant(rng.normal(size=[B, T, D]), tf.float32),
        "word_mask": tf.constant(np.arange(T)[None] < num_words[:, None], tf.float32),
    }


def _model(initial: list[np.ndarray] | None) -> xmcgan.XMCGAN:
    keras.utils.set_random_seed(0)
    gan = xmcgan.XMCGAN(
        generator_lib.Generator(image_size=64, gf_dim=4, z_dim=Z, embedding_dim=D),
        discriminator_lib.Discriminator(image_size=64, df_dim=4, embedding_dim=D),
        max_tokens=T, ema_decay=0.5)
    if initial is not None:
        for variable, value in zip(gan.generator.weights + gan.discriminator.weights, initial):
            variable.assign(value)
        gan.ema.initialize()
    gan.compile(d_optimizer=keras.optimizers.SGD(0.1), g_optimizer=keras.optimizers.SGD(0.1))
    return gan


def _weights(gan: xmcgan.XMCGAN) -> dict[str, np.ndarray]:
    return {f"{name}/{path}": v.numpy() for name, network in (
        ("g", gan.generator), ("d", gan.discriminator), ("ema", gan.generator_ema))
        for path, v in generator_loading.weights_by_path(network).items()}


def check_same_update_as_one_device() -> None:
    batch = _batch()
    single = _model(None)
    initial = [v.numpy() for v in single.generator.weights + single.discriminator.weights]
    single_results = tf.function(single.train_step)(batch)
    expected = _weights(single)

    strategy = tf.distribute.MirroredStrategy(DEVICES)
    assert strategy.num_replicas_in_sync == 2
    with strategy.scope():
        mirrored = _model(initial)
    # Every replica gets the same per-replica batch, so the replica-mean update (gradients
    # summed over replicas of losses scaled by 1/2) must equal the single-device update.
    per_replica = strategy.experimental_distribute_values_from_function(lambda _: batch)

    @tf.function
    def step():
        strategy.run(mirrored.train_step, args=(per_replica,))
        return {m.name: m.result() for m in mirrored.metrics}

    mirrored_results = step()
    actual = _weights(mirrored)
    assert actual.keys() == expected.keys()
    for key, value in expected.items():
        np.testing.assert_allclose(actual[key], value, rtol=1e-4, atol=1e-5, err_msg=key)
    assert not np.allclose(single.generator.weights[0].numpy(), initial[0])  # it trained
    for name, value in single_results.items():
        np.testing.assert_allclose(mirrored_results[name].numpy(), value.numpy(), rtol=1e-4,
                                   atol=1e-5, err_msg=name)
    for replica_value in strategy.experimental_local_results(
            mirrored.generator_ema.trainable_variables[0].value):
        np.testing.assert_allclose(replica_value.numpy(),
                                   mirrored.generator_ema.trainable_variables[0].numpy())


def check_train_lib_mirrored_resume(tmp_dir: str) -> None:
    data_dir = os.path.join(tmp_dir, "data")
    tiny_dataset.write_dataset(data_dir, max_tokens=T, embedding_dim=D)
    model_dir = os.path.join(tmp_dir, "run")
    def run(num_steps: int) -> train_lib.TrainResult:
        return train_lib.train(
            model_dir=model_dir,
            data=train_config.DataConfig(data_dir=data_dir, max_tokens=T),
            schedule=train_config.ScheduleConfig(num_steps=num_steps, batch_size=8, log_every=1,
                                                 checkpoint_every=1, sample_every=10,
                                                 num_samples=2),
            distribution=train_config.DistributionConfig(strategy="mirrored", devices=DEVICES),
            generator_fn=functools.partial(generator_lib.Generator, image_size=64, gf_dim=4,
                                           z_dim=Z, embedding_dim=D),
            discriminator_fn=functools.partial(discriminator_lib.Discriminator, image_size=64,
                                               df_dim=4, embedding_dim=D))

    first = run(num_steps=1)
    assert first.step == 1 and first.resumed_from is None
    second = run(num_steps=2)
    assert second.resumed_from.endswith("ckpt-1") and second.step == 2
    records = summaries.read_train_metrics(model_dir)
    assert [r["step"] for r in records] == [1, 2]
    assert all(np.isfinite(r["loss/g_total"]) for r in records)


def test_same_update_as_one_device():
    _run(check_same_update_as_one_device)


@pytest.mark.slow
def test_train_lib_mirrored_resume(tmp_path):
    _run(check_train_lib_mirrored_resume, str(tmp_path))
