"""The training application: strategy, data, model, the step loop, checkpoints and reports.

`train(*, model_dir, data_dir, ...)` takes keyword arguments only; the entry point
`xmcgan_tf.train` binds them with gin. It

1. makes the distribution strategy (`distribute.make_strategy`);
2. inside its scope builds G, D (`generator_fn()`, `discriminator_fn()`), the optional frozen
   image encoder, the XMCGAN model (`model_fn`) and both Adam optimizers;
3. reads this worker's batches of `input_pipeline.make_dataset` from a checkpointable
   `tf.data` iterator and splits them among the replicas (`distribute.split_to_replicas`);
4. writes MODEL_DIR/run.json and MODEL_DIR/config.gin, restores the latest checkpoint (exact
   resume, iterator included) or starts fresh;
5. loops `strategy.run(model.train_step)` inside a `tf.function`, one step per call, logging
   scalars every `log_every` steps, G_ema sample grids every `sample_every` steps and
   checkpointing every `checkpoint_every` steps and at the end;
6. stops with `NonFiniteLossError` as soon as any reported loss is NaN/Inf, without saving, so
   the last checkpoint on disk is the last good one.

Run directory layout: CONTRACTS §7.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import sys
from typing import Any, Callable, Iterator, Mapping, Sequence

import keras
import numpy as np
import tensorflow as tf
from absl import logging

import xmcgan_tf
from xmcgan_tf import paths
from xmcgan_tf import run_dir
from xmcgan_tf.data import input_pipeline
from xmcgan_tf.data import schema
from xmcgan_tf.models import xmcgan
from xmcgan_tf.networks import discriminator as discriminator_lib
from xmcgan_tf.networks import generator as generator_lib
from xmcgan_tf.training import checkpointing
from xmcgan_tf.training import distribute
from xmcgan_tf.training import summaries

class NonFiniteLossError(FloatingPointError):
    """A reported loss became NaN or Inf; the message names the losses and the step."""


@dataclasses.dataclass
class TrainResult:
    """Outcome of `train`.

    Attributes:
      step: the step training stopped at.
      checkpoint_path: the last checkpoint written (or restored), or None.
      metrics: the last logged scalars.
      resumed_from: the checkpoint the run resumed from, or None for a fresh start.
    """

    step: int
    checkpoint_path: str | None
    metrics: dict[str, float]
    resumed_from: str | None


def _without_strings(batch: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    """Drops string features (captions): they cannot go to accelerators and are not trained on."""
    return {k: v for k, v in batch.items() if v.dtype != tf.string}


def _check_networks(generator: generator_lib.Generator,
                    discriminator: discriminator_lib.Discriminator) -> dict[str, Any]:
    g_config, d_config = generator.get_config(), discriminator.get_config()
    for key in ("image_size", "embedding_dim"):
        if g_config[key] != d_config[key]:
            raise ValueError(f"generator and discriminator disagree on {key}: "
                             f"{g_config[key]} vs {d_config[key]}")
    return g_config


def _run_info(*, strategy: tf.distribute.Strategy, model: xmcgan.XMCGAN, data_dir: str,
              info: schema.DatasetInfo, max_tokens: int, batch_size: int,
              data_variant: str, sentence_embedding: str, mixed_precision: str | None,
              jit_compile: bool) -> dict[str, Any]:
    g_config = model.generator.get_config()
    return {
        "versions": {"xmcgan_tf": xmcgan_tf.__version__, "tensorflow": tf.__version__,
                     "keras": keras.__version__, "python": platform.python_version()},
        "command": " ".join(sys.argv),
        "strategy": distribute.strategy_name(strategy),
        "replicas": int(strategy.num_replicas_in_sync),
        "tf_config": json.loads(os.environ.get("TF_CONFIG", "null")),
        "data_dir": data_dir,
        "dataset_info": dataclasses.asdict(info),
        "generator_config": g_config,
        "discriminator_config": model.discriminator.get_config(),
        "image_size": int(g_config["image_size"]),
        "z_dim": int(g_config["z_dim"]),
        "embedding_dim": int(g_config["embedding_dim"]),
        "max_tokens": int(max_tokens),
        "batch_size_per_update": int(batch_size),
        "d_steps_per_g_step": model.d_steps_per_g_step,
        "batch_size_per_step": int(batch_size) * model.d_steps_per_g_step,
        "data_variant": data_variant,
        "sentence_embedding": sentence_embedding,
        "mixed_precision": mixed_precision,
        "jit_compile": bool(jit_compile),
    }


def _to_json(value: Any) -> Any:
    """Makes run info JSON-safe (Keras configs can hold tuples and dtype policies)."""
    return json.loads(json.dumps(value, default=str))


def _sample_batch(data_dir: str, *, num_samples: int, max_tokens: int, embedding_dim: int,
                  image_size: int, z_dim: int, sentence_embedding: str,
                  seed: int) -> dict[str, np.ndarray]:
    """The fixed captions (and z) of the sample grids: the first examples of `val` (or
    `train` when the dataset has no `val` split) as evaluation reads them (the same captions
    and z for the same seed); at most the split's size."""
    splits = schema.read_dataset_info(data_dir).splits
    split = "val" if splits.get("val") else "train"
    if splits.get(split):
        num_samples = min(num_samples, int(splits[split]))
    dataset = input_pipeline.ordered_examples(
        data_dir, split, image_size=image_size, batch_size=num_samples, num_samples=num_samples,
        seed=seed, z_dim=z_dim, sentence_mode=sentence_embedding, with_images=False,
        max_tokens=max_tokens, embedding_dim=embedding_dim)
    batch = next(iter(dataset))
    return {k: v.numpy() for k, v in batch.items()}


def train(*, model_dir: str, data_dir: str, num_steps: int,
          generator_fn: Callable[[], generator_lib.Generator] = generator_lib.Generator,
          discriminator_fn: Callable[[], discriminator_lib.Discriminator] = (
              discriminator_lib.Discriminator),
          model_fn: Callable[..., xmcgan.XMCGAN] = xmcgan.XMCGAN,
          image_encoder_fn: Callable[[], keras.layers.Layer | None] | None = None,
          batch_size: int = 56, max_tokens: int = 17, data_variant: str = "single",
          sentence_embedding: str = "official", label_rule: str = "largest_area",
          shuffle_buffer: int = 256, random_flip: bool = True, seed: int = 0,
          d_learning_rate: float = 4e-4, g_learning_rate: float = 1e-4, beta_1: float = 0.5,
          beta_2: float = 0.999,
          strategy: str = "default", tpu: str | None = None,
          devices: Sequence[str] | None = None, mixed_precision: str | None = None,
          jit_compile: bool = False,
          log_every: int = 100, checkpoint_every: int = 1000, keep_checkpoints: int = 5,
          sample_every: int = 1000, num_samples: int = 16,
          operative_config: Callable[[], str] | None = None) -> TrainResult:
    """Trains (or resumes training of) an XMC-GAN run in `model_dir`.

    Args:
      model_dir: run directory (created if needed; resumed if it holds checkpoints).
      data_dir: dataset directory written by data_tools (shards + dataset_info.json).
      num_steps: total training steps (a resumed run stops at the same step).
      generator_fn: () -> Generator (gin: `@generator.Generator` with its bindings).
      discriminator_fn: () -> Discriminator.
      model_fn: (generator, discriminator, max_tokens=..., image_encoder=...) -> XMCGAN.
      image_encoder_fn: () -> frozen image encoder or None (L_img^enc off), e.g.
        `pretrained_image_encoder.load_image_encoder`.
      batch_size: global batch size of each update (all replicas), as the released code's
        `batch_size`: a step with `d_steps_per_g_step` updates reads that many batches, e.g.
        2 × 56 at the paper's 128 px setting.
      max_tokens: T; checked against the dataset.
      data_variant: input_pipeline variant ("single", "two_captions", "label_pairs").
      sentence_embedding: "official", "masked_mean" or "cls".
      label_rule: label pairing rule of "label_pairs".
      shuffle_buffer: input shuffle buffer.
      random_flip: random left-right flips of the training images (off when captions name
        left and right).
      seed: seed of the initial weights and of the input pipeline (shuffling, flips, caption
        choice, z).
      d_learning_rate: Adam learning rate of D.
      g_learning_rate: Adam learning rate of G.
      beta_1: Adam β1 of both optimizers.
      beta_2: Adam β2 of both optimizers.
      strategy: "default", "mirrored", "multi_worker" or "tpu" (see `distribute`).
      tpu: TPU name/address for strategy "tpu".
      devices: devices of strategy "mirrored" (default: all local GPUs, else the CPU).
      mixed_precision: Keras dtype policy of the networks, e.g. "mixed_bfloat16"; None for
        float32. Losses and logits stay float32.
      jit_compile: compile the step with XLA (strategy "default" only: XLA cannot compile a
        mirrored step's cross-replica updates; TPU steps are compiled anyway).
      log_every: steps between scalar logs (trackers average over the interval).
      checkpoint_every: steps between checkpoints (one is always written at the end).
      keep_checkpoints: checkpoints kept on disk.
      sample_every: steps between G_ema sample grids (one is always written at the end).
      num_samples: captions in the sample grid.
      operative_config: () -> the operative configuration text, written to
        MODEL_DIR/config.gin (the entry point passes `gin.operative_config_str`).

    Returns:
      TrainResult.

    Raises:
      NonFiniteLossError: a loss became NaN/Inf (the last good checkpoint is kept).
      CheckpointError: MODEL_DIR holds a run with another model configuration.
      schema.DatasetError: the dataset does not match T or D.
    """
    arguments = dict(locals())
    for name, value in (("num_steps", num_steps), ("log_every", log_every),
                        ("checkpoint_every", checkpoint_every), ("sample_every", sample_every),
                        ("batch_size", batch_size), ("num_samples", num_samples)):
        if value < 1:
            raise ValueError(f"train: {name} must be >= 1, got {value}")
    previous_policy = keras.mixed_precision.global_policy()
    if mixed_precision:
        keras.mixed_precision.set_global_policy(mixed_precision)
    try:
        return _train(**arguments)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)


def _train(*, model_dir, data_dir, num_steps, generator_fn, discriminator_fn, model_fn,
           image_encoder_fn, batch_size, max_tokens, data_variant, sentence_embedding,
           label_rule, shuffle_buffer, random_flip, seed, d_learning_rate, g_learning_rate,
           beta_1, beta_2,
           strategy, tpu, devices, mixed_precision, jit_compile, log_every, checkpoint_every,
           keep_checkpoints, sample_every, num_samples, operative_config) -> TrainResult:
    # The checkpointed iterator state names the shard files: one spelling of the directory
    # (relative or absolute, from any working directory) resumes the same run.
    data_dir = paths.absolute(data_dir)
    strategy_name = strategy
    strategy = distribute.make_strategy(strategy_name, tpu=tpu, devices=devices)
    replicas = strategy.num_replicas_in_sync
    chief = distribute.is_chief(strategy)
    if jit_compile and distribute.strategy_name(strategy) != "default":
        # XLA cannot compile the cross-replica updates (optimizer and EMA merge_call) of a
        # mirrored step; TPU programs are compiled anyway.
        raise ValueError(f"jit_compile=True is supported with strategy 'default' only, not "
                         f"{distribute.strategy_name(strategy)!r}")

    # The initial weights are a function of `seed` too, so a fresh run is reproducible.
    keras.utils.set_random_seed(seed)
    with strategy.scope():
        generator = generator_fn()
        discriminator = discriminator_fn()
        g_config = _check_networks(generator, discriminator)
        info = schema.read_dataset_info(data_dir)
        schema.check_compatible(info, max_tokens=max_tokens,
                                embedding_dim=g_config["embedding_dim"], data_dir=data_dir)
        image_encoder = image_encoder_fn() if image_encoder_fn is not None else None
        model = model_fn(generator, discriminator, max_tokens=max_tokens,
                         image_encoder=image_encoder)
        if batch_size % replicas:
            raise ValueError(f"batch_size {batch_size} (per update) must be divisible by the "
                             f"number of replicas, {replicas}")
        step_batch_size = batch_size * model.d_steps_per_g_step
        model.compile(
            d_optimizer=keras.optimizers.Adam(d_learning_rate, beta_1=beta_1, beta_2=beta_2),
            g_optimizer=keras.optimizers.Adam(g_learning_rate, beta_1=beta_1, beta_2=beta_2))
        step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")

    image_size, z_dim = int(g_config["image_size"]), int(g_config["z_dim"])
    embedding_dim = int(g_config["embedding_dim"])

    # One batch of d_steps_per_g_step × GLOBAL / num_workers examples per step from this
    # worker's shards: each update of the step takes its own slice of it.
    def batches(start: tuple[int, int] | None) -> Iterator[dict[str, tf.Tensor]]:
        return iter(input_pipeline.make_dataset(
            data_dir, "train", batch_size=step_batch_size, training=True, max_tokens=max_tokens,
            embedding_dim=embedding_dim, image_size=image_size, variant=data_variant,
            sentence_embedding=sentence_embedding, z_dim=z_dim, seed=seed,
            shuffle_buffer=shuffle_buffer, label_rule=label_rule, random_flip=random_flip,
            input_context=distribute.worker_input_context(strategy),
            start=start).map(_without_strings))

    # The input resumes from the position of the last example consumed (a local variable
    # of each worker: its stream is its own); `label_pairs` from its iterator's state.
    by_position = input_pipeline.has_position(data_variant)
    position = tf.Variable([0, -1], dtype=tf.int64, trainable=False, name="input_position")
    iterator = None if by_position else batches(None)
    input_state = {"input_position": position} if by_position else {"iterator": iterator}

    run_info = _to_json(_run_info(
        strategy=strategy, model=model, data_dir=data_dir, info=info, max_tokens=max_tokens,
        batch_size=batch_size, data_variant=data_variant, sentence_embedding=sentence_embedding,
        mixed_precision=mixed_precision, jit_compile=jit_compile))
    if chief:
        run_dir.write_run_info(model_dir, run_info)
    run_checkpoint = checkpointing.RunCheckpoint(
        model_dir, model=model, step=step, input_state=input_state, strategy=strategy,
        max_to_keep=keep_checkpoints)
    resumed_from = run_checkpoint.restore_latest()
    start_step = int(step.numpy())
    if by_position:
        epoch, offset = (int(v) for v in position.numpy())
        iterator = batches((epoch, offset + 1))
    reports = summaries.TrainingSummaries(model_dir, enabled=chief, start_step=start_step)
    if operative_config is not None and chief:
        config_text = operative_config()
        run_dir.write_config(model_dir, config_text)
        reports.text("config/operative_gin", config_text, step=start_step)
    if resumed_from:
        logging.info("resumed from %s at step %d", resumed_from, start_step)
    else:
        logging.info("starting a fresh run in %s", model_dir)
    logging.info("strategy %s, %d replica(s), global batch %d per update, %d update(s) per step",
                 distribute.strategy_name(strategy), replicas, batch_size,
                 model.d_steps_per_g_step)

    sample_batch = None
    if chief:
        sample_batch = _sample_batch(
            data_dir, num_samples=num_samples, max_tokens=max_tokens,
            embedding_dim=embedding_dim, image_size=image_size, z_dim=z_dim,
            sentence_embedding=sentence_embedding, seed=seed)

    def write_samples(at_step: int) -> None:
        if sample_batch is None:
            return
        images = model.sample({k: tf.constant(v) for k, v in sample_batch.items()
                               if k in ("z", "sentence", "words", "word_mask")}).numpy()
        captions = [c.decode("utf-8") for c in sample_batch.get("caption", [])]
        reports.samples(at_step, images, captions)

    replica_step = (tf.function(model.train_step, jit_compile=True) if jit_compile
                    else model.train_step)

    @tf.function
    def train_step_fn(iterator):
        batch = dict(next(iterator))
        if by_position:
            position.assign(batch.pop(input_pipeline.POSITION)[-1])
        per_replica = distribute.split_to_replicas(strategy, batch)
        strategy.run(replica_step, args=(per_replica,))
        step.assign_add(1)
        # Read in the cross-replica context: the trackers aggregate over all replicas.
        return {tracker.name: tracker.result() for tracker in model.metrics}

    learning_rates = {"learning_rate/d": d_learning_rate, "learning_rate/g": g_learning_rate}
    progress = summaries.Progress(num_steps, start_step)
    last_checkpoint = resumed_from
    values: dict[str, float] = {}
    current = start_step
    try:
        while current < num_steps:
            with input_pipeline.dataset_errors(data_dir, "train"):
                outputs = train_step_fn(iterator)
            current = int(step.numpy())
            values = {name: float(value) for name, value in outputs.items()}
            bad = sorted(name for name, value in values.items() if not np.isfinite(value))
            if bad:
                raise NonFiniteLossError(
                    f"step {current}: non-finite {', '.join(f'{n}={values[n]}' for n in bad)}; "
                    f"training stopped without saving. The last good checkpoint is "
                    f"{last_checkpoint or 'none (no checkpoint was written)'}.")
            if current % log_every == 0 or current == num_steps:
                rate = progress.tick(current)
                scalars = {**values, **learning_rates, "perf/steps_per_sec": rate,
                           "perf/images_per_sec": rate * step_batch_size,
                           **progress.elapsed()}
                reports.scalars(current, scalars)
                progress.log(current, values, rate)
                for tracker in model.metrics:
                    tracker.reset_state()
            if current % sample_every == 0 or current == num_steps:
                write_samples(current)
            if current % checkpoint_every == 0 or current == num_steps:
                last_checkpoint = run_checkpoint.save()
                logging.info("saved %s", last_checkpoint)
        if start_step >= num_steps:
            logging.info("nothing to do: the run is already at step %d >= num_steps %d",
                         start_step, num_steps)
    finally:
        reports.close()
    return TrainResult(step=current, checkpoint_path=last_checkpoint, metrics=values,
                       resumed_from=resumed_from)
