"""Tests of xmcgan_tf.training.train_lib: the NaN guard, config/checkpoint mismatches, the
dataset check and what a run directory holds (tiny 64 px networks, batch 4)."""

import functools
import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from xmcgan_tf import run_dir
from tests.training import tiny_dataset
from xmcgan_tf.data import input_pipeline
from xmcgan_tf.data import schema
from xmcgan_tf.models import generator_loading
from xmcgan_tf.models import xmcgan
from xmcgan_tf.networks import discriminator as discriminator_lib
from xmcgan_tf.networks import generator as generator_lib
from xmcgan_tf.training import summaries
from xmcgan_tf.training import train_config
from xmcgan_tf.training import train_lib

T, D = 6, 16


class _NonFiniteAfter:
    """Extra generator term that is 0 until D has made `updates` updates, then NaN."""

    weight = 1.0
    names = ("loss/g_probe",)

    def __init__(self, updates: int):
        self.updates = updates
        self.model = None

    def __call__(self, branches):
        iterations = self.model.d_optimizer.iterations
        nan = tf.constant(np.nan, tf.float32)
        return {"loss/g_probe": tf.where(iterations >= self.updates, nan, 0.0)}


def _model_fn(generator, discriminator, **kwargs):
    probe = _NonFiniteAfter(updates=5)  # D updates twice per step: NaN at step 3
    model = xmcgan.XMCGAN(generator, discriminator, extra_generator_losses=[probe], **kwargs)
    probe.model = model
    return model


def _train(model_dir, data_dir, gf_dim=4, batch_size=4, num_steps=10, negative_captions=0,
           counterfactual_captions=False, **kwargs):
    return train_lib.train(
        model_dir=model_dir,
        data=train_config.DataConfig(data_dir=data_dir, max_tokens=T,
                                     negative_captions=negative_captions,
                                     counterfactual_captions=counterfactual_captions),
        schedule=train_config.ScheduleConfig(num_steps=num_steps, batch_size=batch_size,
                                             log_every=1, checkpoint_every=2, sample_every=2,
                                             num_samples=3),
        generator_fn=functools.partial(generator_lib.Generator, image_size=64, gf_dim=gf_dim,
                                       z_dim=8, embedding_dim=D),
        discriminator_fn=functools.partial(discriminator_lib.Discriminator, image_size=64,
                                           df_dim=4, embedding_dim=D),
        operative_config=lambda: "# operative config\n", **kwargs)


@pytest.fixture(scope="module")
def nan_run(tmp_path_factory):
    """A run whose loss turns NaN at step 3 (after ckpt-2); returns (model_dir, data_dir, error)."""
    root = tmp_path_factory.mktemp("nan_run")
    data_dir, model_dir = str(root / "data"), str(root / "run")
    tiny_dataset.write_dataset(data_dir, max_tokens=T, embedding_dim=D)
    with pytest.raises(train_lib.NonFiniteLossError) as error:
        _train(model_dir, data_dir, model_fn=_model_fn, num_steps=10)
    return model_dir, data_dir, error.value


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(nan_run):
    model_dir, _, error = nan_run
    message = str(error)
    assert "step 3" in message and "loss/g_probe=nan" in message and "ckpt-2" in message
    checkpoints = run_dir.checkpoint_dir(model_dir)
    assert tf.train.latest_checkpoint(checkpoints).endswith("ckpt-2")
    assert not tf.io.gfile.glob(os.path.join(checkpoints, "ckpt-3*"))
    loaded = generator_loading.load_generators(model_dir)
    assert loaded.step == 2
    assert all(np.isfinite(v.numpy()).all() for v in loaded.generator_ema.weights)


def test_run_directory_explains_itself(nan_run):
    model_dir, data_dir, _ = nan_run
    info = run_dir.read_run_info(model_dir)
    assert info["data_dir"] == data_dir and info["strategy"] == "default"
    assert info["batch_size_per_update"] == 4 and info["d_steps_per_g_step"] == 2
    assert info["batch_size_per_step"] == 8  # each of the 2 updates reads its own batch
    assert info["discriminator_config"]["df_dim"] == 4
    assert set(info["versions"]) == {"xmcgan_tf", "tensorflow", "keras", "python"}
    with open(os.path.join(model_dir, "config.gin")) as f:
        assert f.read() == "# operative config\n"
    steps = [r["step"] for r in summaries.read_train_metrics(model_dir)]
    assert steps == [1, 2]  # step 3 was not logged: it failed the guard
    assert os.path.exists(run_dir.sample_path(model_dir, 2))
    with open(os.path.join(model_dir, "samples", "captions.txt")) as f:
        assert len(f.read().splitlines()) == 3


def test_other_network_config_is_a_clear_error(nan_run, tmp_path):
    model_dir, data_dir, _ = nan_run
    copy = str(tmp_path / "copy")
    shutil.copytree(model_dir, copy)
    with pytest.raises(run_dir.CheckpointError, match="gf_dim: checkpointed 4, configured 8"):
        _train(copy, data_dir, gf_dim=8, num_steps=4)
    # Without run.json to compare, the strict restore still refuses the checkpoint.
    os.remove(os.path.join(copy, "run.json"))
    with pytest.raises(run_dir.CheckpointError, match="does not match"):
        _train(copy, data_dir, gf_dim=8, num_steps=4)


def test_dataset_of_another_embedding_dim_is_a_clear_error(tmp_path):
    data_dir = str(tmp_path / "data")
    tiny_dataset.write_dataset(data_dir, max_tokens=T, embedding_dim=8, num_train=4, num_val=4)
    with pytest.raises(schema.DatasetError, match="embedding dim D: dataset 8, model 16"):
        _train(str(tmp_path / "run"), data_dir, num_steps=1)


class _BatchProbe:
    """Extra generator term (0) that records the batch of every branch it sees."""

    weight = 1.0
    names = ("loss/g_batch_probe",)

    def __init__(self):
        self.sizes = []

    def __call__(self, branches):
        self.sizes.extend(int(b.fake_images.shape[0]) for b in branches)
        return {"loss/g_batch_probe": tf.constant(0.0)}


def test_batch_size_is_the_batch_of_each_update(tmp_path):
    """batch_size means the batch of each update, as in the released code: a step with two
    D updates reads two batches of batch_size (one D-only, one joint)."""
    data_dir = str(tmp_path / "data")
    tiny_dataset.write_dataset(data_dir, max_tokens=T, embedding_dim=D, num_train=12,
                               num_val=4)
    probe = _BatchProbe()
    result = _train(str(tmp_path / "run"), data_dir, num_steps=1, model_fn=functools.partial(
        xmcgan.XMCGAN, extra_generator_losses=[probe]), batch_size=3)
    assert result.step == 1
    assert probe.sizes and set(probe.sizes) == {3}  # the joint update's batch
    info = run_dir.read_run_info(str(tmp_path / "run"))
    assert info["batch_size_per_update"] == 3 and info["batch_size_per_step"] == 6


def test_bad_group_values_raise_when_the_group_is_made():
    with pytest.raises(ValueError, match="ScheduleConfig: num_steps must be >= 1, got 0"):
        train_config.ScheduleConfig(num_steps=0)
    with pytest.raises(ValueError, match="DataConfig: negative_captions must be >= 0"):
        train_config.DataConfig(data_dir="/data", negative_captions=-1)
    with pytest.raises(ValueError, match="DataConfig: variant must be one of"):
        train_config.DataConfig(data_dir="/data", variant="pairs")
    with pytest.raises(ValueError, match="OptimizerConfig: beta_2 must be in"):
        train_config.OptimizerConfig(beta_2=1.0)
    with pytest.raises(ValueError, match="DistributionConfig: strategy must be one of"):
        train_config.DistributionConfig(strategy="gpu")


def test_check_run_config_lists_every_difference():
    previous = {"generator_config": {"gf_dim": 4, "z_dim": 8, "name": "generator"},
                "max_tokens": 6}
    current = {"generator_config": {"gf_dim": 8, "z_dim": 8, "name": "generator_1"},
               "max_tokens": 7}
    with pytest.raises(run_dir.CheckpointError) as error:
        run_dir.check_run_config("/runs/a", previous, current)
    message = str(error.value)
    assert "generator_config.gf_dim: checkpointed 4, configured 8" in message
    assert "max_tokens: checkpointed 6, configured 7" in message
    assert "generator_config.name" not in message  # Keras bookkeeping is ignored
    run_dir.check_run_config("/runs/a", previous, json.loads(json.dumps(previous)))


def test_jit_compile_needs_the_default_strategy():
    with pytest.raises(ValueError, match="jit_compile"):
        train_config.DistributionConfig(strategy="mirrored", devices=["/cpu:0"],
                                        jit_compile=True)


def test_resume_accepts_another_spelling_of_the_data_dir(tmp_path, monkeypatch):
    tiny_dataset.write_dataset(str(tmp_path / "data"), max_tokens=T, embedding_dim=D)
    model_dir = str(tmp_path / "run")
    monkeypatch.chdir(tmp_path)
    first = _train(model_dir, "data", num_steps=2)  # relative to tmp_path
    assert first.step == 2
    info = run_dir.read_run_info(model_dir)
    assert info["data_dir"] == str(tmp_path / "data")  # recorded absolute
    monkeypatch.chdir(tmp_path / "data")
    second = _train(model_dir, ".", num_steps=3)  # the same directory, spelled otherwise
    assert second.resumed_from.endswith("ckpt-2") and second.step == 3


def test_checkpoint_holds_the_input_position_not_the_input_buffers(nan_run):
    """The checkpoint is the networks, the optimizers and two integers of input position:
    nothing of the shuffle buffer (a resumed run rebuilds the stream from the position)."""
    model_dir, _, _ = nan_run
    path = tf.train.latest_checkpoint(run_dir.checkpoint_dir(model_dir))
    keys = dict(tf.train.list_variables(path))
    assert not [k for k in keys if k.startswith("iterator")]
    # Step 2, one batch of 2 × 4 examples per step: the last one consumed is offset 15 of
    # epoch 0, the tiny set's 16th and last training image.
    assert tf.train.load_variable(path, "input_position/.ATTRIBUTES/VARIABLE_VALUE").tolist() \
        == [0, 15]
    reader = tf.train.load_checkpoint(path)
    dtypes = reader.get_variable_to_dtype_map()
    variable_bytes = sum(int(np.prod(shape)) * dtypes[name].size
                         for name, shape in keys.items() if dtypes[name] != tf.string)
    data_bytes = sum(os.path.getsize(p) for p in tf.io.gfile.glob(path + ".data-*"))
    assert data_bytes < 1.05 * variable_bytes + 100_000


def test_negative_captions_give_the_model_a_caption_bank_of_the_training_split(tmp_path):
    data_dir = str(tmp_path / "data")
    tiny_dataset.write_dataset(data_dir, max_tokens=T, embedding_dim=D, num_train=12,
                               num_val=4)
    models = []

    def model_fn(generator, discriminator, **kwargs):
        models.append(xmcgan.XMCGAN(generator, discriminator, **kwargs))
        return models[-1]

    result = _train(str(tmp_path / "run"), data_dir, num_steps=1, model_fn=model_fn,
                    negative_captions=8)
    assert result.step == 1
    want_sentences, want_keys = input_pipeline.caption_bank(
        data_dir, "train", size=8, seed=0, max_tokens=T, embedding_dim=D)
    np.testing.assert_allclose(models[0].negative_sentences.numpy(), want_sentences)
    np.testing.assert_array_equal(models[0].negative_image_keys.numpy(), want_keys)


def test_counterfactual_captions_train_the_counterfactual_term(tmp_path):
    from data_tools import synthetic_scenes

    def embed(captions):
        rng = np.random.default_rng(len(captions))
        return (rng.normal(size=[len(captions), T, D]).astype(np.float32),
                np.full([len(captions)], 4, np.int32))

    data_dir = str(tmp_path / "data")
    synthetic_scenes.generate_tfrecords(
        data_dir, num_train=8, num_val=4, image_size=64, seed=0, embed_fn=embed, num_shards=2,
        counterfactuals=True, text_encoder_handles={"preprocessor": "p", "encoder": "e"},
        progress=False, log=None)
    model_fn = functools.partial(xmcgan.XMCGAN, counterfactual_weight=1.0)
    result = _train(str(tmp_path / "run"), data_dir, num_steps=2, model_fn=model_fn,
                    counterfactual_captions=True)
    assert result.step == 2
    assert result.metrics["loss/d_counterfactual"] > 0.0
    with pytest.raises(ValueError, match="counterfactual_weight > 0 and .* go together"):
        _train(str(tmp_path / "run2"), data_dir, num_steps=1, model_fn=model_fn)
    with pytest.raises(ValueError, match="go together"):
        _train(str(tmp_path / "run3"), data_dir, num_steps=1, counterfactual_captions=True)
