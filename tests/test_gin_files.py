"""Every gin file parses (with MODEL_DIR and DATA_DIR bound) and the experiments are layered."""

import dataclasses
import glob
import inspect
import os
import re

import gin
import pytest

from xmcgan_tf import train
from xmcgan_tf.networks import discriminator as discriminator_lib
from xmcgan_tf.networks import generator as generator_lib
from xmcgan_tf.training import train_config
from xmcgan_tf.training import train_lib

GIN_DIR = os.path.join(train.REPO_DIR, "gin")
# The XMC-GAN training configs (other gin files belong to other entry points).
GIN_FILES = sorted(
    os.path.relpath(p, GIN_DIR)
    for p in glob.glob(os.path.join(GIN_DIR, "**", "*.gin"), recursive=True)
    if re.search(r"\btrain_(lib|config)\b|gin/runs/train\.gin", open(p).read()))
# The REQUIRED macros of the run layer and of the variants that load a pretrained encoder.
DIRS = ["MODEL_DIR='/runs/test'", "DATA_DIR='/data/test'", "ENCODER_DIR='/encoders/test'",
        "IMAGE_TOWER_DIR='/encoders/tower'"]
# `<dataset>_<variant>_<size>.gin`; other experiments (e.g. a demo) derive from one of these.
LAYERED = re.compile(r"^experiments/[a-z0-9]+_[a-z0-9_]+_\d+\.gin$")
RUNNABLE = [f for f in GIN_FILES if f.startswith(("experiments/", "tests/"))]


@pytest.fixture(autouse=True)
def _clear_gin():
    gin.clear_config()
    yield
    gin.clear_config()


def test_the_layers_exist():
    for layer in ("models/xmcgan_64.gin", "models/xmcgan_128.gin", "models/xmcgan_256.gin",
                  "datasets/synthetic_64.gin", "datasets/coco14.gin", "datasets/cub.gin",
                  "variants/xmcgan.gin", "variants/xmcgan_no_contrastive.gin",
                  "runs/train.gin", "experiments/synthetic_xmcgan_64.gin", "tests/tiny.gin"):
        assert layer in GIN_FILES


@pytest.mark.parametrize("gin_file", GIN_FILES)
def test_parses(gin_file):
    # A layer alone may use macros another layer defines (models use the dataset's D).
    layer_macros = [] if gin_file in RUNNABLE else ["EMBEDDING_DIM = 16"]
    train.parse_config([gin_file], DIRS + layer_macros)


@pytest.mark.parametrize("gin_file", RUNNABLE)
def test_runnable_configs_bind_everything_train_needs(gin_file):
    train.parse_config([gin_file], DIRS)
    assert str(gin.query_parameter("train_lib.train.model_dir")) == "%MODEL_DIR"
    assert gin.query_parameter("%MODEL_DIR") == "/runs/test"
    for name in ("data", "schedule", "optimizer", "distribution", "generator_fn",
                 "discriminator_fn", "model_fn"):
        gin.query_parameter(f"train_lib.train.{name}")
    for name in ("DataConfig.data_dir", "DataConfig.max_tokens", "ScheduleConfig.num_steps",
                 "ScheduleConfig.batch_size"):
        gin.query_parameter(f"train_config.{name}")
    # Every group accepts its bindings.
    for group in (train_config.DataConfig, train_config.ScheduleConfig,
                  train_config.OptimizerConfig, train_config.DistributionConfig):
        gin.get_configurable(group)()
    # The networks accept their bindings and agree on the shared sizes.
    generator = gin.get_configurable(generator_lib.Generator)()
    discriminator = gin.get_configurable(discriminator_lib.Discriminator)()
    assert generator.image_size == discriminator.image_size
    assert generator.embedding_dim == discriminator.embedding_dim
    if LAYERED.match(gin_file):
        size = int(re.search(r"_(\d+)\.gin$", gin_file).group(1))
        assert generator.image_size == size


@pytest.mark.parametrize("gin_file", [f for f in RUNNABLE if LAYERED.match(f)])
def test_experiments_include_one_file_of_each_layer(gin_file):
    with open(os.path.join(GIN_DIR, gin_file)) as f:
        includes = re.findall(r"^include '([^']+)'", f.read(), flags=re.M)
    assert sorted(i.split("/")[1] for i in includes) == ["datasets", "models", "runs",
                                                         "variants"]
    dataset = [i for i in includes if i.startswith("gin/datasets/")][0]
    assert os.path.basename(gin_file).startswith(
        os.path.basename(dataset).split("_")[0].removesuffix(".gin"))


def test_no_contrastive_variant_turns_every_contrastive_term_off():
    train.parse_config(
        ["experiments/synthetic_xmcgan_64.gin", "variants/xmcgan_no_contrastive.gin"], DIRS)
    for name in ("sentence_weight", "word_weight", "image_weight"):
        assert gin.query_parameter(f"xmcgan.XMCGAN.{name}") == 0.0
    assert gin.query_parameter("train_lib.train.image_encoder_fn") is None


def _update(model_class) -> tuple:
    """(d_steps_per_g_step, ema_decay, ema_rampup) as bound, or the model's defaults."""
    defaults = inspect.signature(model_class.__init__).parameters
    values = []
    for name in ("d_steps_per_g_step", "ema_decay", "ema_rampup"):
        try:
            values.append(gin.query_parameter(f"xmcgan.XMCGAN.{name}"))
        except ValueError:
            values.append(defaults[name].default)
    return tuple(values)


@pytest.mark.parametrize("variant", sorted(
    os.path.relpath(p, GIN_DIR) for p in glob.glob(os.path.join(GIN_DIR, "variants", "*.gin"))))
def test_a_variant_layered_on_an_experiment_keeps_the_experiments_update(variant):
    from xmcgan_tf.models import xmcgan

    # The ablation runner and the fidelity benchmark parse [experiment, variant]: the CPU
    # recipe's update must survive the variant, and the paper's experiments keep the released one.
    train.parse_config(["experiments/synthetic_xmcgan_64.gin", variant], DIRS)
    assert _update(xmcgan.XMCGAN) == (1, 0.99, True)
    gin.clear_config()
    train.parse_config(["experiments/coco14_xmcgan_128.gin", variant], DIRS)
    assert _update(xmcgan.XMCGAN) == (2, 0.999, False)


def test_required_dirs_must_be_bound():
    with pytest.raises(train.GinConfigError, match="MODEL_DIR"):
        train.parse_config(["tests/tiny.gin"], ["DATA_DIR='/data'"])


def test_unknown_parameter_is_named():
    with pytest.raises(train.GinConfigError, match="num_stepz"):
        train.parse_config(["tests/tiny.gin"],
                           DIRS + ["train_config.ScheduleConfig.num_stepz=3"])


def test_unknown_configurable_is_named():
    with pytest.raises(train.GinConfigError, match="Generatr"):
        train.parse_config(["tests/tiny.gin"], DIRS + ["generator.Generatr.gf_dim=3"])


def test_unknown_network_parameter_is_named_before_any_data_is_read(tmp_path):
    train.parse_config(["tests/tiny.gin"], [f"MODEL_DIR='{tmp_path}/run'",
                                             f"DATA_DIR='{tmp_path}/missing'",
                                             "generator.Generator.gff_dim=3"])
    with pytest.raises(train.GinConfigError, match="gff_dim"):
        train.run_training()


def test_missing_file_is_reported():
    with pytest.raises(train.GinConfigError, match="nonexistent.gin"):
        train.parse_config(["nonexistent.gin"], DIRS)


def test_without_the_run_layer_train_is_unconfigured():
    train.parse_config(["models/xmcgan_64.gin"], ["EMBEDDING_DIM = 16"])
    with pytest.raises(train.GinConfigError, match="train_lib.train"):
        train.run_training()


def test_flags_are_documented():
    for name in ("gin_file", "gin_param", "strategy", "tpu"):
        assert len(train.flags.FLAGS[name].help) > 30
    assert "--gin_file" in train.__doc__ and "--strategy" in train.__doc__
    assert train_lib.train.__doc__.count(":") > 10  # every argument documented
    for group in (train_config.DataConfig, train_config.ScheduleConfig,
                  train_config.OptimizerConfig, train_config.DistributionConfig):
        for field in dataclasses.fields(group):
            assert f"{field.name}:" in group.__doc__, (group.__name__, field.name)


def test_cpu_recipe_runs_bfloat16_and_binds_the_augmentation_on_request():
    from xmcgan_tf.layers import differentiable_augmentation
    from xmcgan_tf.models import xmcgan

    augmented = "@differentiable_augmentation.DifferentiableAugmentation()"
    train.parse_config(["experiments/synthetic_xmcgan_64_demo.gin"],
                       DIRS + [f"xmcgan.XMCGAN.augmentation = {augmented}"])
    distribution = gin.get_configurable(train_config.DistributionConfig)()
    assert distribution.mixed_precision == "mixed_bfloat16"
    generator = gin.get_configurable(generator_lib.Generator)()
    discriminator = gin.get_configurable(discriminator_lib.Discriminator)()
    model = gin.get_configurable(xmcgan.XMCGAN)(generator, discriminator, max_tokens=24)
    assert isinstance(model.augmentation, differentiable_augmentation.DifferentiableAugmentation)
    assert model.augmentation.policies == ("translation", "cutout")
    assert model.augmentation.translation_ratio == 0.0625
    assert model.augmentation.cutout_ratio == 0.25
