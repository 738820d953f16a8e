"""The training application: strategy, data, model, the step loop, checkpoints and reports.

`train(*, model_dir, data, schedule, optimizer, distribution, ...)` takes the configuration
groups of `train_config` and the network factories; the entry point `xmcgan_tf.train` binds
them with gin. After making the distribution strategy (`distribute.make_strategy`) it runs
three stages:

1. `_build_model`, inside the strategy's scope: G, D (`generator_fn()`,
   `discriminator_fn()`), the optional frozen image encoder, the caption bank, the XMCGAN
   model (`model_fn`) and both Adam optimizers;
2. `_open_run`: writes MODEL_DIR/run.json and MODEL_DIR/config.gin, restores the latest
   checkpoint (exact resume, input position included) or starts fresh, and builds this
   worker's stream of `input_pipeline.make_dataset` batches from that position;
3. `_loop`: `strategy.run(model.train_step)` inside a `tf.function`, one step per call (the
   batch split among the replicas by `distribute.split_to_replicas`), logging scalars every
   `log_every` steps, G_ema sample grids every `sample_every` steps and checkpointing every
   `checkpoint_every` steps and at the end; it stops with `NonFiniteLossError` as soon as any
   reported loss is NaN/Inf, without saving, so the last checkpoint on disk is the last good
   one.

Run directory layout: CONTRACTS §7.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import sys
from typing import Any, Callable, Iterator, Mapping

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
from xmcgan_tf.training import train_config

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


def _run_info(*, strategy: tf.distribute.Strategy, model: xmcgan.XMCGAN,
              info: schema.DatasetInfo, data: train_config.DataConfig,
              schedule: train_config.ScheduleConfig,
              distribution: train_config.DistributionConfig) -> dict[str, Any]:
    g_config = model.generator.get_config()
    return {
        "versions": {"xmcgan_tf": xmcgan_tf.__version__, "tensorflow": tf.__version__,
                     "keras": keras.__version__, "python": platform.python_version()},
        "command": " ".join(sys.argv),
        "strategy": distribute.strategy_name(strategy),
        "replicas": int(strategy.num_replicas_in_sync),
        "tf_config": json.loads(os.environ.get("TF_CONFIG", "null")),
        "data_dir": data.data_dir,
        "dataset_info": dataclasses.asdict(info),
        "generator_config": g_config,
        "discriminator_config": model.discriminator.get_config(),
        "image_size": int(g_config["image_size"]),
        "z_dim": int(g_config["z_dim"]),
        "embedding_dim": int(g_config["embedding_dim"]),
        "max_tokens": int(data.max_tokens),
        "batch_size_per_update": int(schedule.batch_size),
        "d_steps_per_g_step": model.d_steps_per_g_step,
        "batch_size_per_step": int(schedule.batch_size) * model.d_steps_per_g_step,
        "data_variant": data.variant,
        "sentence_embedding": data.sentence_embedding,
        "mixed_precision": distribution.mixed_precision,
        "jit_compile": bool(distribution.jit_compile),
    }


def _to_json(value: Any) -> Any:
    """Makes run info JSON-safe (Keras configs can hold tuples and dtype policies)."""
    return json.loads(json.dumps(value, default=str))


def _sample_batch(data: train_config.DataConfig, *, num_samples: int, embedding_dim: int,
                  image_size: int, z_dim: int, seed: int) -> dict[str, np.ndarray]:
    """The fixed captions (and z) of the sample grids: the first examples of `val` (or
    `train` when the dataset has no `val` split) as evaluation reads them (the same captions
    and z for the same seed); at most the split's size."""
    splits = schema.read_dataset_info(data.data_dir).splits
    split = "val" if splits.get("val") else "train"
    if splits.get(split):
        num_samples = min(num_samples, int(splits[split]))
    dataset = input_pipeline.ordered_examples(
        data.data_dir, split, image_size=image_size, batch_size=num_samples,
        num_samples=num_samples, seed=seed, z_dim=z_dim, sentence_mode=data.sentence_embedding,
        with_images=False, max_tokens=data.max_tokens, embedding_dim=embedding_dim)
    batch = next(iter(dataset))
    return {k: v.numpy() for k, v in batch.items()}


def train(*, model_dir: str, data: train_config.DataConfig,
          schedule: train_config.ScheduleConfig,
          optimizer: train_config.OptimizerConfig | None = None,
          distribution: train_config.DistributionConfig | None = None,
          generator_fn: Callable[[], generator_lib.Generator] = generator_lib.Generator,
          discriminator_fn: Callable[[], discriminator_lib.Discriminator] = (
              discriminator_lib.Discriminator),
          model_fn: Callable[..., xmcgan.XMCGAN] = xmcgan.XMCGAN,
          image_encoder_fn: Callable[[], keras.layers.Layer | None] | None = None,
          seed: int = 0,
          operative_config: Callable[[], str] | None = None) -> TrainResult:
    """Trains (or resumes training of) an XMC-GAN run in `model_dir`.

    Args:
      model_dir: run directory (created if needed; resumed if it holds checkpoints).
      data: the dataset and its input pipeline (`train_config.DataConfig`).
      schedule: steps, batch and reporting intervals (`train_config.ScheduleConfig`).
      optimizer: the Adam optimizers of D and G (`train_config.OptimizerConfig`; None: its
        defaults, the paper's).
      distribution: strategy, dtype policy and XLA (`train_config.DistributionConfig`; None:
        its defaults, one device in float32).
      generator_fn: () -> Generator (gin: `@generator.Generator` with its bindings).
      discriminator_fn: () -> Discriminator.
      model_fn: (generator, discriminator, max_tokens=..., image_encoder=...) -> XMCGAN.
      image_encoder_fn: () -> frozen image encoder or None (L_img^enc off), e.g.
        `pretrained_image_encoder.load_image_encoder`.
      seed: seed of the initial weights and of the input pipeline (shuffling, flips, caption
        choice, z).
      operative_config: () -> the operative configuration text, written to
        MODEL_DIR/config.gin (the entry point passes `gin.operative_config_str`).

    Returns:
      TrainResult.

    Raises:
      NonFiniteLossError: a loss became NaN/Inf (the last good checkpoint is kept).
      CheckpointError: MODEL_DIR holds a run with another model configuration.
      schema.DatasetError: the dataset does not match T or D.
    """
    optimizer = optimizer or train_config.OptimizerConfig()
    distribution = distribution or train_config.DistributionConfig()
    previous_policy = keras.mixed_precision.global_policy()
    if distribution.mixed_precision:
        keras.mixed_precision.set_global_policy(distribution.mixed_precision)
    # One spelling of the data directory (relative or absolute, from any working directory)
    # for everything the run records and reads.
    data = dataclasses.replace(data, data_dir=paths.absolute(data.data_dir))
    try:
        strategy = distribute.make_strategy(distribution.strategy, tpu=distribution.tpu,
                                            devices=distribution.devices)
        # The initial weights are a function of `seed` too, so a fresh run is reproducible.
        keras.utils.set_random_seed(seed)
        model, info = _build_model(
            strategy, data=data, schedule=schedule, optimizer=optimizer,
            generator_fn=generator_fn, discriminator_fn=discriminator_fn, model_fn=model_fn,
            image_encoder_fn=image_encoder_fn, seed=seed)
        run = _open_run(model_dir, strategy, model, info, data=data, schedule=schedule,
                        distribution=distribution, seed=seed,
                        operative_config=operative_config)
        return _loop(run, model, strategy, data=data, schedule=schedule, optimizer=optimizer,
                     distribution=distribution, seed=seed)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)


def _build_model(strategy: tf.distribute.Strategy, *, data: train_config.DataConfig,
                 schedule: train_config.ScheduleConfig,
                 optimizer: train_config.OptimizerConfig, generator_fn, discriminator_fn,
                 model_fn, image_encoder_fn, seed: int
                 ) -> tuple[xmcgan.XMCGAN, schema.DatasetInfo]:
    """Stage 1, in the strategy's scope: G, D, the image encoder, the caption bank, the XMCGAN
    model and both optimizers, after checking the networks against each other and the data."""
    replicas = strategy.num_replicas_in_sync
    with strategy.scope():
        generator = generator_fn()
        discriminator = discriminator_fn()
        g_config = _check_networks(generator, discriminator)
        info = schema.read_dataset_info(data.data_dir)
        schema.check_compatible(info, max_tokens=data.max_tokens,
                                embedding_dim=g_config["embedding_dim"], data_dir=data.data_dir)
        image_encoder = image_encoder_fn() if image_encoder_fn is not None else None
        bank = {}
        if data.negative_captions:
            sentences, keys = input_pipeline.caption_bank(
                data.data_dir, "train", size=data.negative_captions, seed=seed,
                max_tokens=data.max_tokens, embedding_dim=g_config["embedding_dim"],
                sentence_mode=data.sentence_embedding)
            bank = dict(negative_sentences=sentences, negative_image_keys=keys)
        model = model_fn(generator, discriminator, max_tokens=data.max_tokens,
                         image_encoder=image_encoder, **bank)
        _check_counterfactuals(model, data)
        if schedule.batch_size % replicas:
            raise ValueError(f"batch_size {schedule.batch_size} (per update) must be divisible "
                             f"by the number of replicas, {replicas}")
        d_optimizer, g_optimizer = optimizer.make()
        model.compile(d_optimizer=d_optimizer, g_optimizer=g_optimizer)
    return model, info


def _check_counterfactuals(model: xmcgan.XMCGAN, data: train_config.DataConfig) -> None:
    """The counterfactual term and the counterfactual captions go together."""
    weighted = bool(getattr(model, "counterfactual_weight", 0.0))
    if weighted != data.counterfactual_captions:
        raise ValueError(
            "xmcgan.XMCGAN.counterfactual_weight > 0 and "
            "train_config.DataConfig.counterfactual_captions = True go together; got "
            f"counterfactual_weight {getattr(model, 'counterfactual_weight', 0.0)} and "
            f"counterfactual_captions {data.counterfactual_captions}")


@dataclasses.dataclass
class _Run:
    """Stage 2's result: the run directory opened, its checkpoint restored, the input stream
    positioned."""

    checkpoint: checkpointing.RunCheckpoint
    step: tf.Variable
    start_step: int
    resumed_from: str | None
    iterator: Iterator[dict[str, tf.Tensor]]
    position: tf.Variable | None
    reports: summaries.TrainingSummaries
    chief: bool


def _open_run(model_dir: str, strategy: tf.distribute.Strategy, model: xmcgan.XMCGAN,
              info: schema.DatasetInfo, *, data: train_config.DataConfig,
              schedule: train_config.ScheduleConfig,
              distribution: train_config.DistributionConfig, seed: int,
              operative_config: Callable[[], str] | None) -> _Run:
    """Stage 2: run.json and config.gin, the latest checkpoint restored (networks, optimizers,
    step and input position), and this worker's training stream from that position."""
    chief = distribute.is_chief(strategy)
    with strategy.scope():
        step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    g_config = model.generator.get_config()
    step_batch_size = schedule.batch_size * model.d_steps_per_g_step

    # One batch of d_steps_per_g_step × GLOBAL / num_workers examples per step from this
    # worker's shards: each update of the step takes its own slice of it.
    def batches(start: tuple[int, int] | None) -> Iterator[dict[str, tf.Tensor]]:
        return iter(input_pipeline.make_dataset(
            data.data_dir, "train", batch_size=step_batch_size, training=True,
            max_tokens=data.max_tokens, embedding_dim=int(g_config["embedding_dim"]),
            image_size=int(g_config["image_size"]), variant=data.variant,
            sentence_embedding=data.sentence_embedding, z_dim=int(g_config["z_dim"]),
            seed=seed, shuffle_buffer=data.shuffle_buffer, label_rule=data.label_rule,
            random_flip=data.random_flip, counterfactuals=data.counterfactual_captions,
            input_context=distribute.worker_input_context(strategy),
            start=start).map(_without_strings))

    # The input resumes from the position of the last example consumed (a local variable
    # of each worker: its stream is its own); `label_pairs` from its iterator's state.
    by_position = input_pipeline.has_position(data.variant)
    position = (tf.Variable([0, -1], dtype=tf.int64, trainable=False, name="input_position")
                if by_position else None)
    iterator = None if by_position else batches(None)
    input_state = {"input_position": position} if by_position else {"iterator": iterator}

    run_info = _to_json(_run_info(strategy=strategy, model=model, info=info, data=data,
                                  schedule=schedule, distribution=distribution))
    if chief:
        run_dir.write_run_info(model_dir, run_info)
    run_checkpoint = checkpointing.RunCheckpoint(
        model_dir, model=model, step=step, input_state=input_state, strategy=strategy,
        max_to_keep=schedule.keep_checkpoints)
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
                 distribute.strategy_name(strategy), strategy.num_replicas_in_sync,
                 schedule.batch_size, model.d_steps_per_g_step)
    return _Run(checkpoint=run_checkpoint, step=step,
                start_step=start_step, resumed_from=resumed_from, iterator=iterator,
                position=position, reports=reports, chief=chief)


def _loop(run: _Run, model: xmcgan.XMCGAN, strategy: tf.distribute.Strategy, *,
          data: train_config.DataConfig, schedule: train_config.ScheduleConfig,
          optimizer: train_config.OptimizerConfig,
          distribution: train_config.DistributionConfig, seed: int) -> TrainResult:
    """Stage 3: the step loop, with logs, sample grids and checkpoints at their intervals and
    the stop on a non-finite loss."""
    g_config = model.generator.get_config()
    step_batch_size = schedule.batch_size * model.d_steps_per_g_step
    sample_batch = None
    if run.chief:
        sample_batch = _sample_batch(
            data, num_samples=schedule.num_samples,
            embedding_dim=int(g_config["embedding_dim"]),
            image_size=int(g_config["image_size"]), z_dim=int(g_config["z_dim"]), seed=seed)

    def write_samples(at_step: int) -> None:
        if sample_batch is None:
            return
        images = model.sample({k: tf.constant(v) for k, v in sample_batch.items()
                               if k in ("z", "sentence", "words", "word_mask")}).numpy()
        captions = [c.decode("utf-8") for c in sample_batch.get("caption", [])]
        run.reports.samples(at_step, images, captions)

    replica_step = (tf.function(model.train_step, jit_compile=True)
                    if distribution.jit_compile else model.train_step)
    position, step = run.position, run.step

    @tf.function
    def train_step_fn(iterator):
        batch = dict(next(iterator))
        if position is not None:
            position.assign(batch.pop(input_pipeline.POSITION)[-1])
        per_replica = distribute.split_to_replicas(strategy, batch)
        strategy.run(replica_step, args=(per_replica,))
        step.assign_add(1)
        # Read in the cross-replica context: the trackers aggregate over all replicas.
        return {tracker.name: tracker.result() for tracker in model.metrics}

    learning_rates = {"learning_rate/d": optimizer.d_learning_rate,
                      "learning_rate/g": optimizer.g_learning_rate}
    num_steps = schedule.num_steps
    progress = summaries.Progress(num_steps, run.start_step)
    last_checkpoint = run.resumed_from
    values: dict[str, float] = {}
    current = run.start_step
    try:
        while current < num_steps:
            with input_pipeline.dataset_errors(data.data_dir, "train"):
                outputs = train_step_fn(run.iterator)
            current = int(step.numpy())
            values = {name: float(value) for name, value in outputs.items()}
            bad = sorted(name for name, value in values.items() if not np.isfinite(value))
            if bad:
                raise NonFiniteLossError(
                    f"step {current}: non-finite {', '.join(f'{n}={values[n]}' for n in bad)}; "
                    f"training stopped without saving. The last good checkpoint is "
                    f"{last_checkpoint or 'none (no checkpoint was written)'}.")
            if current % schedule.log_every == 0 or current == num_steps:
                rate = progress.tick(current)
                scalars = {**values, **learning_rates, "perf/steps_per_sec": rate,
                           "perf/images_per_sec": rate * step_batch_size,
                           **progress.elapsed()}
                run.reports.scalars(current, scalars)
                progress.log(current, values, rate)
                for tracker in model.metrics:
                    tracker.reset_state()
            if current % schedule.sample_every == 0 or current == num_steps:
                write_samples(current)
            if current % schedule.checkpoint_every == 0 or current == num_steps:
                last_checkpoint = run.checkpoint.save()
                logging.info("saved %s", last_checkpoint)
        if run.start_step >= num_steps:
            logging.info("nothing to do: the run is already at step %d >= num_steps %d",
                         run.start_step, num_steps)
    finally:
        run.reports.close()
    return TrainResult(step=current, checkpoint_path=last_checkpoint, metrics=values,
                       resumed_from=run.resumed_from)
