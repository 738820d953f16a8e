"""Checkpoints of a training run, exact resume and run-configuration checks (CONTRACTS §7).

`MODEL_DIR/checkpoints/ckpt-N` (N = training step) is a `tf.train.Checkpoint` holding
`generator`, `generator_ema`, `discriminator` (each a {weight path: variable} dict, see
`generator_loading.weights_by_path`), `g_optimizer`, `d_optimizer`, `step` and the
per-worker input state: `input_position`, the (epoch, offset) of the last training example
consumed, from which the input pipeline rebuilds the rest of its stream (the `label_pairs`
variant saves its data `iterator` instead). Restoring all of them makes a restarted run
continue exactly where the checkpoint left off: the next batches, the optimizer moments,
the spectral-norm vectors and the batch-norm statistics are those an uninterrupted run would
have had.

A checkpoint written by a run with another network configuration is an error, never a silent
fresh start: `run_dir.check_run_config` compares `run.json`'s network configs before anything is
restored, and `RunCheckpoint.restore_latest` requires every variable to match in name and
shape.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import tensorflow as tf
from absl import logging

from xmcgan_tf import run_dir
from xmcgan_tf.models import generator_loading
from xmcgan_tf.models import xmcgan
from xmcgan_tf.training import distribute


class RunCheckpoint:
    """The checkpoint of a training run and its manager.

    Create it inside the strategy scope, after `model.compile`, so that every variable
    (optimizer slots included) exists before anything is restored.

    Args:
      model_dir: the run directory; checkpoints go to MODEL_DIR/checkpoints (on non-chief
        workers of a multi-worker run to `distribute.worker_dir`, as each worker's input
        position is its own).
      model: the compiled XMCGAN.
      step: int64 scalar variable counting training steps.
      input_state: what resumes this worker's input exactly, by checkpoint key: the
        `input_position` variable (the stream position of the last example consumed, two
        integers; see `input_pipeline.make_dataset(start=...)`), or for the `label_pairs`
        variant the `iterator` itself.
      strategy: the distribution strategy.
      max_to_keep: checkpoints kept on disk.
    """

    def __init__(self, model_dir: str, *, model: xmcgan.XMCGAN, step: tf.Variable,
                 input_state: Mapping[str, Any], strategy: tf.distribute.Strategy,
                 max_to_keep: int = 5):
        self.model_dir = model_dir
        self.step = step
        weights = generator_loading.weights_by_path
        self.checkpoint = tf.train.Checkpoint(
            generator=weights(model.generator), generator_ema=weights(model.generator_ema),
            discriminator=weights(model.discriminator), g_optimizer=model.g_optimizer,
            d_optimizer=model.d_optimizer, step=step, **input_state)
        self.is_chief = distribute.is_chief(strategy)
        self.directory = (run_dir.checkpoint_dir(model_dir) if self.is_chief else
                          os.path.join(distribute.worker_dir(model_dir, strategy),
                                       run_dir.CHECKPOINT_SUBDIR))
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, self.directory, max_to_keep=max_to_keep,
            checkpoint_name=run_dir.CHECKPOINT_PREFIX, step_counter=step)

    def latest(self) -> str | None:
        """This worker's checkpoint at the step of the run's (the chief's) latest, or None."""
        run_latest = tf.train.latest_checkpoint(run_dir.checkpoint_dir(self.model_dir))
        if run_latest is None:
            return None
        path = os.path.join(self.directory, os.path.basename(run_latest))
        if not tf.io.gfile.exists(path + ".index"):
            raise run_dir.CheckpointError(f"the run's latest checkpoint is {run_latest} but this "
                                  f"worker's {path} is missing; restart every worker of the "
                                  "run with the same MODEL_DIR and TF_CONFIG")
        return path

    def remove_unfinished_saves(self) -> list[str]:
        """Deletes the `<prefix>-N_temp*` directories a save killed midway leaves behind (call
        at start, before any save); returns what was removed."""
        removed = []
        for path in tf.io.gfile.glob(os.path.join(self.directory, "*_temp*")):
            if tf.io.gfile.isdir(path):
                tf.io.gfile.rmtree(path)
            else:
                tf.io.gfile.remove(path)
            removed.append(path)
        return removed

    def restore_latest(self) -> str | None:
        """Restores the latest checkpoint, if any, strictly.

        Returns:
          The restored checkpoint path, or None when the run starts fresh.

        Raises:
          CheckpointError: a variable of the model, the optimizers or the iterator is missing
            from the checkpoint or has another shape, or the checkpoint holds variables the
            model lacks.
        """
        for leftover in self.remove_unfinished_saves():
            logging.info("removed %s, left by an interrupted save", leftover)
        path = self.latest()
        if path is None:
            return None
        try:
            status = self.checkpoint.restore(path)
            status.assert_consumed()
        except (AssertionError, ValueError, tf.errors.InvalidArgumentError,
                tf.errors.NotFoundError) as e:
            raise run_dir.CheckpointError(
                f"checkpoint {path} does not match the configured model, optimizers or input "
                f"pipeline, so the run cannot resume from it: {e}. Use a new MODEL_DIR or "
                f"restore the run's gin configuration ({self.model_dir}/config.gin).") from e
        return path

    def save(self) -> str:
        """Writes `ckpt-<step>` (every worker must call it in a multi-worker run)."""
        return self.manager.save(checkpoint_number=self.step)
