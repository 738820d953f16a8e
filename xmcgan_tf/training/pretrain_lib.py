"""Dual-encoder pretraining application (SPEC §4, §5): DAMSM, + NT-Xent (T2I_CL), + SupCon (SCL).

`pretrain(*, model_dir, data_dir, num_steps, ...)` takes keyword arguments only; the entry point
`xmcgan_tf.pretrain_encoder` binds them with gin. It trains `DualEncoderPretraining` with
`keras.Model.fit` under the chosen `tf.distribute` strategy on batches of the `single`,
`two_captions` (T2I_CL) or `label_pairs` (SCL) pipeline variant, and writes to MODEL_DIR:

- `dual_encoder.json` + `dual_encoder.weights.h5`: the encoder, loadable by path with
  `xmcgan_tf.models.dual_encoder_io.load_dual_encoder` (the GAN stage's frozen encoder and the
  R-precision judge), refreshed at every checkpoint;
- `checkpoints/`: encoder + optimizer + step (`tf.train.CheckpointManager`); a restarted run
  resumes from the latest one (at a checkpoint boundary; the data stream restarts from its
  seed shifted by the step);
- `config.gin`, `metrics/pretrain.jsonl` (train and validation metrics per checkpoint) and
  TensorBoard logs in `tensorboard/`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Callable, Mapping

import keras
import tensorflow as tf
from absl import logging

from xmcgan_tf import run_dir
from xmcgan_tf.data import input_pipeline
from xmcgan_tf.models import dual_encoder_io
from xmcgan_tf.models import dual_encoder_pretraining
from xmcgan_tf.models import generator_loading
from xmcgan_tf.networks import dual_encoder as dual_encoder_lib
from xmcgan_tf.training import distribute
from xmcgan_tf.training import summaries

METRICS_FILE = "pretrain.jsonl"


class PretrainCheckpointError(ValueError):
    """MODEL_DIR holds a checkpoint of another configuration; the message says what to do."""


@dataclasses.dataclass
class PretrainResult:
    """Outcome of `pretrain`.

    Attributes:
      step: the step training stopped at.
      encoder_dir: the directory holding the saved dual encoder (MODEL_DIR).
      train_metrics: the last epoch's training metrics.
      val_metrics: the last validation metrics ({} without validation).
    """

    step: int
    encoder_dir: str
    train_metrics: dict[str, float]
    val_metrics: dict[str, float]


def _numeric(batch: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    """Drops string features (captions): they are not trained on and cannot go to devices."""
    return {k: v for k, v in batch.items() if v.dtype != tf.string}


class _CheckpointCallback(keras.callbacks.Callback):
    """After every `steps_per_checkpoint` steps: checkpoint, save the encoder, log metrics."""

    def __init__(self, *, manager: tf.train.CheckpointManager, step: tf.Variable,
                 encoder: dual_encoder_lib.DualEncoder, model_dir: str, max_tokens: int,
                 steps_per_checkpoint: int, info: dict, chief: bool):
        super().__init__()
        self._manager = manager
        self._step = step
        self._encoder = encoder
        self._model_dir = model_dir
        self._max_tokens = max_tokens
        self._steps_per_checkpoint = steps_per_checkpoint
        self._info = info
        self._chief = chief
        self.last_train: dict[str, float] = {}
        self.last_val: dict[str, float] = {}

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = {k: float(v) for k, v in (logs or {}).items()}
        self._step.assign((epoch + 1) * self._steps_per_checkpoint)
        step = int(self._step.numpy())
        self._manager.save(checkpoint_number=step)
        self.last_train = {k: v for k, v in logs.items() if not k.startswith("val_")}
        self.last_val = {k[4:]: v for k, v in logs.items() if k.startswith("val_")}
        if not self._chief:
            return
        dual_encoder_io.save_dual_encoder(self._encoder, self._model_dir,
                                          max_tokens=self._max_tokens,
                                          info={**self._info, "step": step})
        path = run_dir.metrics_path(self._model_dir, METRICS_FILE)
        tf.io.gfile.makedirs(os.path.dirname(path))
        with tf.io.gfile.GFile(path, "a") as f:
            f.write(json.dumps({"step": step, "train": self.last_train, "val": self.last_val})
                    + "\n")
        logging.info("step %d: %s", step, " ".join(f"{k}={v:.4f}" for k, v in logs.items()))


class _ProgressCallback(keras.callbacks.Callback):
    """Every `log_every` steps: the training losses, steps/s and the ETA in the log."""

    def __init__(self, *, num_steps: int, start_step: int, steps_per_epoch: int,
                 log_every: int):
        super().__init__()
        self._progress = summaries.Progress(num_steps, start_step)
        self._steps_per_epoch = steps_per_epoch
        self._log_every = log_every
        self._epoch = 0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        step = self._epoch * self._steps_per_epoch + batch + 1
        if step % self._log_every == 0 or step == self._progress.total_steps:
            values = {k if k.startswith("loss/") else f"loss/{k}": float(v)
                      for k, v in (logs or {}).items()}
            self._progress.log(step, values, self._progress.tick(step))


def pretrain(*, model_dir: str, data_dir: str, num_steps: int, max_tokens: int,
             image_size: int = 64, batch_size: int = 64, learning_rate: float = 2e-4,
             data_variant: str = "single", sentence_embedding: str = "official",
             label_rule: str = "largest_area", shuffle_buffer: int = 256,
             random_flip: bool = True, steps_per_checkpoint: int = 200, keep_checkpoints: int = 3,
             log_every: int = 20,
             validation_batches: int = 4, seed: int = 0, strategy: str = "default",
             tpu: str | None = None,
             encoder_fn: Callable[..., dual_encoder_lib.DualEncoder] = dual_encoder_lib.DualEncoder,
             model_fn: Callable[..., dual_encoder_pretraining.DualEncoderPretraining] = (
                 dual_encoder_pretraining.DualEncoderPretraining),
             operative_config: Callable[[], str] | None = None) -> PretrainResult:
    """Pretrains a dual encoder; see the module docstring for what MODEL_DIR receives.

    Args:
      model_dir: run directory (created; resumed when it holds checkpoints).
      data_dir: dataset directory (shards + dataset_info.json).
      num_steps: total training steps (rounded up to a multiple of `steps_per_checkpoint`).
      max_tokens: T; must equal the dataset's.
      image_size: S the images are resized to.
      batch_size: global batch size.
      learning_rate: Adam learning rate.
      data_variant: `single` (DAMSM), `two_captions` (T2I_CL), `label_pairs` (SCL).
      sentence_embedding: official | masked_mean | cls (input sentence vectors; unused by the
        encoder's own sentence feature but kept consistent with the GAN stage's data).
      label_rule: `largest_area` or `any_shared` for `label_pairs`.
      shuffle_buffer: examples in the training shuffle buffer.
      random_flip: random left-right flips of the training images (off when captions name
        left and right).
      steps_per_checkpoint: steps between checkpoints (one Keras epoch).
      keep_checkpoints: checkpoints kept.
      log_every: steps between progress lines (losses, steps/s, ETA).
      validation_batches: batches of the `val` split evaluated at each checkpoint (0 = none).
      seed: data and initialisation seed.
      strategy: default | mirrored | multi_worker | tpu.
      tpu: TPU address for `tpu`.
      encoder_fn: builds the DualEncoder (gin-bound widths); called with image_size and
        embedding_dim.
      model_fn: builds the pretraining model from the encoder (gin-bound loss weights).
      operative_config: returns the operative gin config to record in MODEL_DIR/config.gin.

    Returns:
      PretrainResult.
    """
    info = input_pipeline.dataset_info(data_dir)
    strat = distribute.make_strategy(strategy, tpu=tpu)
    chief = distribute.is_chief(strat)
    keras.utils.set_random_seed(seed)
    tf.io.gfile.makedirs(model_dir)
    if chief and operative_config is not None:
        run_dir.write_config(model_dir, operative_config())

    with strat.scope():
        encoder = encoder_fn(image_size=image_size, embedding_dim=info.embedding_dim)
        encoder.build_for_inputs(max_tokens=max_tokens)
        model = model_fn(encoder)
        optimizer = keras.optimizers.Adam(learning_rate)
        model.compile(optimizer=optimizer)
        optimizer.build(encoder.trainable_variables)
        step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        # Keras 3 layers held in Python lists are invisible to tf.train.Checkpoint's object
        # graph, so the encoder is checkpointed as {weight path: variable}.
        checkpoint = tf.train.Checkpoint(encoder=generator_loading.weights_by_path(encoder),
                                         optimizer=optimizer, step=step)
    checkpoint_dir = run_dir.checkpoint_dir(model_dir)
    if not chief:
        checkpoint_dir = os.path.join(distribute.worker_scratch_dir(model_dir, strat),
                                      run_dir.CHECKPOINT_SUBDIR)
    manager = tf.train.CheckpointManager(checkpoint, checkpoint_dir, max_to_keep=keep_checkpoints)
    if manager.latest_checkpoint:
        try:
            checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        except AssertionError as e:
            raise PretrainCheckpointError(
                f"checkpoint {manager.latest_checkpoint} does not match this dual-encoder "
                "configuration (widths, image size or embedding dimension changed); use a new "
                f"MODEL_DIR or the configuration that wrote it ({e.args[0][:200]}...)") from e
        logging.info("resumed from %s at step %d", manager.latest_checkpoint, int(step.numpy()))
    start = int(step.numpy())
    epochs = -(-num_steps // steps_per_checkpoint)
    initial_epoch = start // steps_per_checkpoint

    def data(split: str, training: bool) -> tf.data.Dataset:
        dataset = input_pipeline.make_dataset(
            data_dir, split, batch_size=batch_size, training=training, max_tokens=max_tokens,
            embedding_dim=info.embedding_dim, image_size=image_size, variant=data_variant,
            sentence_embedding=sentence_embedding, seed=seed + start, label_rule=label_rule,
            shuffle_buffer=shuffle_buffer, random_flip=random_flip)
        return dataset.map(_numeric)

    validation = None
    if validation_batches and "val" in info.splits:
        validation = data("val", training=False)
    callback = _CheckpointCallback(
        manager=manager, step=step, encoder=encoder, model_dir=model_dir,
        max_tokens=max_tokens, steps_per_checkpoint=steps_per_checkpoint, chief=chief,
        info={"data_dir": data_dir, "data_variant": data_variant,
              "embedding_dim": info.embedding_dim, "image_size": image_size})
    callbacks = [callback]
    if chief:
        callbacks.append(_ProgressCallback(num_steps=epochs * steps_per_checkpoint,
                                           start_step=start,
                                           steps_per_epoch=steps_per_checkpoint,
                                           log_every=log_every))
        callbacks.append(keras.callbacks.TensorBoard(
            os.path.join(model_dir, run_dir.TENSORBOARD_SUBDIR)))
    if initial_epoch < epochs:
        with input_pipeline.dataset_errors():
            model.fit(data("train", training=True), epochs=epochs, initial_epoch=initial_epoch,
                      steps_per_epoch=steps_per_checkpoint, validation_data=validation,
                      validation_steps=validation_batches if validation is not None else None,
                      callbacks=callbacks, verbose=0)
    return PretrainResult(step=int(step.numpy()), encoder_dir=model_dir,
                          train_metrics=callback.last_train, val_metrics=callback.last_val)
