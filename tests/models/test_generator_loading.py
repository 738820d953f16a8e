"""Tests of xmcgan_tf.models.generator_loading: rebuilding G and G_ema from a run directory."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from xmcgan_tf import run_dir
from xmcgan_tf.models import generator_loading
from xmcgan_tf.networks import generator as generator_lib

T = 5


def _generator(seed: int) -> generator_lib.Generator:
    tf.random.set_seed(seed)
    config = dict(image_size=64, gf_dim=4, z_dim=8, embedding_dim=16)
    return generator_loading.build_generator(generator_lib.Generator(**config).get_config(), T)


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    """A run directory with run.json and checkpoints ckpt-3 and ckpt-7 (CONTRACTS §7 keys)."""
    model_dir = str(tmp_path_factory.mktemp("run"))
    generator, generator_ema = _generator(0), _generator(1)
    step = tf.Variable(0, dtype=tf.int64)
    checkpoint = tf.train.Checkpoint(
        generator=generator_loading.weights_by_path(generator),
        generator_ema=generator_loading.weights_by_path(generator_ema), step=step)
    manager = tf.train.CheckpointManager(checkpoint, run_dir.checkpoint_dir(model_dir),
                                         max_to_keep=3, checkpoint_name="ckpt")
    saved = {}
    for number in (3, 7):
        step.assign(number)
        for v in generator.trainable_variables:
            v.assign(v + 1.0)
        manager.save(checkpoint_number=number)
        saved[number] = ([v.numpy() for v in generator.weights],
                         [v.numpy() for v in generator_ema.weights])
    with open(os.path.join(model_dir, "run.json"), "w") as f:
        json.dump({"generator_config": generator.get_config(), "max_tokens": T}, f)
    return model_dir, saved


def test_latest_checkpoint_restores_both_generators(saved_run):
    model_dir, saved = saved_run
    loaded = generator_loading.load_generators(model_dir)
    assert loaded.step == 7
    assert loaded.checkpoint_path.endswith("ckpt-7")
    assert loaded.run_info["max_tokens"] == T
    g_values, ema_values = saved[7]
    for v, value in zip(loaded.generator.weights, g_values):
        np.testing.assert_array_equal(v.numpy(), value)
    for v, value in zip(loaded.generator_ema.weights, ema_values):
        np.testing.assert_array_equal(v.numpy(), value)
    images = loaded.generator_ema(*loaded.generator_ema.example_inputs(T, batch_size=2),
                                  training=False)
    assert images.shape == (2, 64, 64, 3)


def test_weights_by_path_covers_every_weight_once():
    generator = _generator(2)
    weights = generator_loading.weights_by_path(generator)
    assert len(weights) == len(generator.weights)
    assert "stem/kernel" in weights
    assert any(key.startswith("gen_spatial_block") for key in weights)


def test_named_checkpoint(saved_run):
    model_dir, saved = saved_run
    loaded = generator_loading.load_generators(model_dir, "ckpt-3")
    assert loaded.step == 3
    np.testing.assert_array_equal(loaded.generator.weights[0].numpy(), saved[3][0][0])


def test_missing_run_json_and_checkpoint_raise(tmp_path):
    with pytest.raises(run_dir.CheckpointError, match="run.json"):
        generator_loading.load_generators(str(tmp_path))
    with open(tmp_path / "run.json", "w") as f:
        json.dump({"generator_config": {}, "max_tokens": T}, f)
    with pytest.raises(run_dir.CheckpointError, match="no checkpoint"):
        generator_loading.load_generators(str(tmp_path))


def test_unknown_checkpoint_name_raises(saved_run):
    with pytest.raises(run_dir.CheckpointError, match="ckpt-5"):
        generator_loading.load_generators(saved_run[0], "ckpt-5")


def test_config_that_does_not_match_the_checkpoint_raises(saved_run, tmp_path):
    model_dir, _ = saved_run
    os.symlink(run_dir.checkpoint_dir(model_dir),
               run_dir.checkpoint_dir(str(tmp_path)))
    config = run_dir.read_run_info(model_dir)["generator_config"]
    with open(tmp_path / "run.json", "w") as f:
        json.dump({"generator_config": {**config, "gf_dim": 8}, "max_tokens": T}, f)
    with pytest.raises(run_dir.CheckpointError, match="does not match"):
        generator_loading.load_generators(str(tmp_path))
