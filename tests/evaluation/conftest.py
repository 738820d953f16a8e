"""Fixtures of the evaluation tests: small synthetic datasets with stand-in caption embeddings.

The scenes come from `data_tools.synthetic_scenes` (images, captions, objects/* ground truth);
captions are embedded by a deterministic stand-in (a vector per caption text, T = 6, D = 8) so
that no text encoder has to be built.
"""

import json
import os
import zlib

import numpy as np
import pytest
import tensorflow as tf

from data_tools import synthetic_scenes
from xmcgan_tf import run_dir
from xmcgan_tf.evaluation import domain_evaluator
from xmcgan_tf.models import generator_loading
from xmcgan_tf.networks import generator as generator_lib

MAX_TOKENS = 6
EMBEDDING_DIM = 8


def fake_embed(captions):
    """Caption texts -> ([N, T, D] float32, [N] int32): a fixed vector sequence per text."""
    embeddings = np.stack([
        np.random.default_rng(zlib.crc32(c.encode())).normal(size=(MAX_TOKENS, EMBEDDING_DIM))
        for c in captions]).astype(np.float32)
    num_tokens = np.array([min(2 + len(c.split()), MAX_TOKENS) for c in captions], np.int32)
    return embeddings, num_tokens


def write_scenes(output_dir, num_train: int, num_val: int, seed: int = 0,
                 image_size: int = 64) -> str:
    """Writes a synthetic TFRecord dataset; returns its directory."""
    synthetic_scenes.generate_tfrecords(
        str(output_dir), num_train=num_train, num_val=num_val, image_size=image_size, seed=seed,
        embed_fn=fake_embed, num_shards=2,
        text_encoder_handles={"preprocessor": "stand-in", "encoder": "stand-in"}, progress=False,
        log=None)
    return str(output_dir)


def write_run(model_dir, data_dir, steps):
    """A run directory (the layout xmcgan_tf.train writes: run.json, checkpoints/) with tiny
    generators saved at the given steps."""
    config = generator_lib.Generator(image_size=64, gf_dim=2, z_dim=8,
                                     embedding_dim=EMBEDDING_DIM).get_config()
    generator = generator_loading.build_generator(config, MAX_TOKENS)
    generator_ema = generator_loading.build_generator(config, MAX_TOKENS)
    step = tf.Variable(0, dtype=tf.int64)
    manager = tf.train.CheckpointManager(
        tf.train.Checkpoint(generator=generator_loading.weights_by_path(generator),
                            generator_ema=generator_loading.weights_by_path(generator_ema),
                            step=step),
        run_dir.checkpoint_dir(model_dir), max_to_keep=5, checkpoint_name="ckpt")
    with open(os.path.join(model_dir, "run.json"), "w") as f:
        json.dump({"generator_config": generator.get_config(), "max_tokens": MAX_TOKENS,
                   "data_dir": data_dir, "sentence_embedding": "official"}, f)
    for value in steps:
        step.assign(value)
        generator_ema.stem.kernel.assign_add(tf.ones_like(generator_ema.stem.kernel) * 0.1)
        manager.save(checkpoint_number=value)


@pytest.fixture(scope="session")
def scenes_dir(tmp_path_factory):
    """64 train + 120 val scenes at 64 px."""
    return write_scenes(tmp_path_factory.mktemp("scenes"), num_train=64, num_val=120)


@pytest.fixture(scope="session")
def trained_evaluator(scenes_dir, tmp_path_factory):
    """(directory, report) of a domain evaluator trained briefly (120 steps) and scored on its
    own training images: a non-trivial but imperfect evaluator."""
    output = str(tmp_path_factory.mktemp("evaluator"))
    report = domain_evaluator.train(scenes_dir, output, epochs=30, batch_size=16,
                                    learning_rate=3e-3, width=8, cell_dim=16, val_split="train",
                                    jit_compile=False)
    return output, report
