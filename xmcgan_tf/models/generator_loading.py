"""Rebuilds a training run's generators from its run directory (CONTRACTS §7).

A run directory MODEL_DIR written by `xmcgan_tf.training.train_lib` holds `run.json` (with the
generator's `get_config()` and the caption length T) and `checkpoints/ckpt-N`, a
`tf.train.Checkpoint` with the keys `generator`, `generator_ema`, `discriminator`,
`g_optimizer`, `d_optimizer`, `step` and `iterator`. Evaluation and export only need the two
generators, which this module rebuilds from the config and restores from a checkpoint.

The networks are checkpointed as {weight path below the network: variable} dicts
(`weights_by_path`), not as Keras objects: a `tf.train.Checkpoint` of a Keras 3 model silently
leaves out the weights of layers held in Python lists (the generator's and discriminator's
blocks), while the weight paths name every weight uniquely and stay stable across processes.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import keras
import tensorflow as tf

from xmcgan_tf import run_dir
from xmcgan_tf.networks import generator as generator_lib

class LoadedGenerators(NamedTuple):
    """Generators restored from one checkpoint of a run.

    Attributes:
      generator: the raw generator G (built, weights restored).
      generator_ema: the EMA generator (built, weights restored; BN statistics are G's).
      step: training step of the checkpoint.
      checkpoint_path: the checkpoint prefix that was restored (`.../checkpoints/ckpt-N`).
      run_info: the contents of `run.json`.
    """

    generator: generator_lib.Generator
    generator_ema: generator_lib.Generator
    step: int
    checkpoint_path: str
    run_info: dict


def build_generator(config: dict[str, Any], max_tokens: int) -> generator_lib.Generator:
    """Creates a generator from its `get_config()` and builds its variables.

    The generator is called once in inference mode on an all-zero batch of one example, which
    creates every variable without touching the batch-norm statistics.

    Args:
      config: `Generator.get_config()` of the trained generator.
      max_tokens: T, tokens per caption.

    Returns:
      The built generator (freshly initialised weights).
    """
    generator = generator_lib.Generator.from_config(dict(config))
    generator(*generator.example_inputs(max_tokens), training=False)
    return generator


def weights_by_path(model: keras.Model) -> dict[str, tf.Variable]:
    """Every weight of a built model, keyed by its path below the model.

    `generator/gen_block0/norm1/gamma/kernel` -> `gen_block0/norm1/gamma/kernel`, so a model
    and a copy of it with another name (G and G_ema) have the same keys.

    Args:
      model: a built Keras model.

    Returns:
      {path: tf.Variable (a distributed variable under a strategy)}.

    Raises:
      ValueError: the model has no weights (not built) or two weights share a path.
    """
    if not model.weights:
        raise ValueError(f"model {model.name!r} has no weights; build it before checkpointing")
    prefix = model.name + "/"
    weights = {}
    for weight in model.weights:
        path = weight.path[len(prefix):] if weight.path.startswith(prefix) else weight.path
        if path in weights:
            raise ValueError(f"model {model.name!r} has two weights at path {path!r}; give its "
                             "layers unique names")
        weights[path] = weight.value if isinstance(weight, keras.Variable) else weight
    return weights


def restore(checkpoint_path: str, **objects: Any) -> None:
    """Restores `objects` (checkpoint key -> trackable) from a checkpoint, strictly.

    Every variable of the given objects must be present in the checkpoint with the same shape;
    keys of the checkpoint that are not asked for are ignored.

    Raises:
      CheckpointError: a variable is missing or has another shape, which means the checkpoint
        was written by a run with another model configuration.
    """
    try:
        status = tf.train.Checkpoint(**objects).restore(checkpoint_path)
        status.assert_existing_objects_matched()
        status.expect_partial()
    except (AssertionError, ValueError, tf.errors.InvalidArgumentError) as e:
        raise run_dir.CheckpointError(
            f"checkpoint {checkpoint_path} does not match the model configuration "
            f"({', '.join(objects)}): {e}") from e


def load_generators(model_dir: str, checkpoint: str | None = None) -> LoadedGenerators:
    """Rebuilds G and G_ema of a run and restores them from one of its checkpoints.

    Args:
      model_dir: the run directory (holds run.json and checkpoints/).
      checkpoint: None for the latest checkpoint, or a checkpoint prefix / name
        (see `run_dir.resolve_checkpoint`).

    Returns:
      LoadedGenerators.

    Raises:
      CheckpointError: missing run.json or checkpoint, or a checkpoint whose variables do not
        match the generator configuration in run.json.
    """
    run_info = run_dir.read_run_info(model_dir)
    path = run_dir.resolve_checkpoint(model_dir, checkpoint)
    generator = build_generator(run_info["generator_config"], int(run_info["max_tokens"]))
    generator_ema = build_generator(run_info["generator_config"], int(run_info["max_tokens"]))
    step = tf.Variable(0, dtype=tf.int64, trainable=False)
    restore(path, generator=weights_by_path(generator),
            generator_ema=weights_by_path(generator_ema), step=step)
    return LoadedGenerators(generator=generator, generator_ema=generator_ema,
                            step=int(step.numpy()), checkpoint_path=path,
                            run_info=run_info)
