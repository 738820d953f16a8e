"""The run directory: its layout, its metadata and its checkpoints, in one place.

A training run (`xmcgan_tf.train`; `xmcgan_tf.pretrain_encoder` uses the same layout) writes

    MODEL_DIR/
      run.json            RUN_INFO_FILE: the networks' `get_config()`, T, D, the data, the batch
      config.gin          CONFIG_FILE: the operative gin configuration
      checkpoints/        CHECKPOINT_SUBDIR: `ckpt-N` (CHECKPOINT_PREFIX), `tf.train.Checkpoint`s
                          whose step counter is the variable `STEP_VARIABLE`, and the `checkpoint`
                          state file of `tf.train.CheckpointManager`
      metrics/            METRICS_SUBDIR: train.jsonl (TRAIN_METRICS_FILE) and the evaluations'
      samples/            SAMPLES_SUBDIR: G_ema sample grids
      tensorboard/        TENSORBOARD_SUBDIR: the event files

Training, evaluation, the ablation study, export and the benchmarks read and write the
directory through this module only. Metadata files are written atomically (`files`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import tensorflow as tf

from xmcgan_tf import files

RUN_INFO_FILE = "run.json"
CONFIG_FILE = "config.gin"
CHECKPOINT_SUBDIR = "checkpoints"
CHECKPOINT_PREFIX = "ckpt"
METRICS_SUBDIR = "metrics"
SAMPLES_SUBDIR = "samples"
TENSORBOARD_SUBDIR = "tensorboard"
TRAIN_METRICS_FILE = "train.jsonl"
# The key of the step counter in a run checkpoint (`tf.train.Checkpoint(step=...)`).
STEP_VARIABLE = "step/.ATTRIBUTES/VARIABLE_VALUE"
# run.json fields that must not change when a run is resumed.
RESUME_INVARIANT_FIELDS = ("generator_config", "discriminator_config", "max_tokens",
                           "embedding_dim")
# run.json fields every reader needs.
REQUIRED_FIELDS = ("generator_config", "max_tokens")
# Keras bookkeeping in get_config() that does not change the weights.
_IGNORED_CONFIG_KEYS = frozenset({"name", "trainable", "dtype"})


class CheckpointError(ValueError):
    """A run directory or checkpoint that cannot be used; the message names the problem."""


def checkpoint_dir(model_dir: str) -> str:
    """`MODEL_DIR/checkpoints`."""
    return os.path.join(model_dir, CHECKPOINT_SUBDIR)


def metrics_path(model_dir: str, name: str) -> str:
    """`MODEL_DIR/metrics/<name>`."""
    return os.path.join(model_dir, METRICS_SUBDIR, name)


def sample_path(model_dir: str, step: int) -> str:
    """`MODEL_DIR/samples/step_XXXXXXX.png`."""
    return os.path.join(model_dir, SAMPLES_SUBDIR, f"step_{step:07d}.png")


def read_run_info(model_dir: str) -> dict:
    """Reads `MODEL_DIR/run.json`; raises CheckpointError naming the problem."""
    path = os.path.join(model_dir, RUN_INFO_FILE)
    if not tf.io.gfile.exists(path):
        raise CheckpointError(f"{path} not found: {model_dir!r} is not a run directory written by "
                              "xmcgan_tf.train (expected run.json beside checkpoints/)")
    try:
        with tf.io.gfile.GFile(path) as f:
            info = json.load(f)
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path} is not valid JSON: {e}") from e
    for key in REQUIRED_FIELDS:
        if key not in info:
            raise CheckpointError(f"{path} lacks the field {key!r}")
    return info


def write_run_info(model_dir: str, run_info: Mapping[str, Any]) -> None:
    """Writes `MODEL_DIR/run.json`, after checking an existing one against it
    (`check_run_config`): a run directory never changes its networks."""
    path = os.path.join(model_dir, RUN_INFO_FILE)
    if tf.io.gfile.exists(path):
        check_run_config(model_dir, read_run_info(model_dir), run_info)
    files.write_json_atomic(path, dict(run_info))


def write_config(model_dir: str, config_text: str) -> None:
    """Writes the operative gin configuration to `MODEL_DIR/config.gin`."""
    files.write_atomic(os.path.join(model_dir, CONFIG_FILE), config_text)


def _differences(previous: Any, current: Any, prefix: str = "") -> list[str]:
    if isinstance(previous, Mapping) and isinstance(current, Mapping):
        found = []
        for key in sorted((set(previous) | set(current)) - _IGNORED_CONFIG_KEYS):
            found += _differences(previous.get(key), current.get(key), f"{prefix}{key}.")
        return found
    if previous != current:
        return [f"{prefix.rstrip('.')}: checkpointed {previous!r}, configured {current!r}"]
    return []


def check_run_config(model_dir: str, previous: Mapping[str, Any],
                     current: Mapping[str, Any]) -> None:
    """Raises CheckpointError when a run directory was written with another network config.

    Args:
      model_dir: the run directory (for the message).
      previous: the run.json found in it.
      current: the run.json of the configured run.
    """
    problems = []
    for field in RESUME_INVARIANT_FIELDS:
        if field in previous:
            problems += _differences(previous[field], current.get(field), f"{field}.")
    if problems:
        raise CheckpointError(
            f"{model_dir} holds a run with another model configuration, so its checkpoints "
            "cannot be resumed: " + "; ".join(problems)
            + ". Use a new MODEL_DIR or restore the run's gin configuration "
            f"({model_dir}/{CONFIG_FILE}).")


def checkpoints(model_dir: str) -> list[tuple[int, str]]:
    """(step, checkpoint prefix) of every complete checkpoint of a run, by step (from the
    `checkpoint` state file; a prefix whose `.index` is missing is left out)."""
    state = tf.train.get_checkpoint_state(checkpoint_dir(model_dir))
    if state is None:
        return []
    found = []
    for path in state.all_model_checkpoint_paths:
        if tf.io.gfile.exists(path + ".index"):
            found.append((int(tf.train.load_variable(path, STEP_VARIABLE)), path))
    return sorted(found)


def resolve_checkpoint(model_dir: str, checkpoint: str | None = None) -> str:
    """The checkpoint prefix to restore.

    Args:
      model_dir: the run directory.
      checkpoint: None for the latest checkpoint of the run; otherwise a checkpoint prefix,
        either a path (`/runs/a/checkpoints/ckpt-200`) or a name inside
        `MODEL_DIR/checkpoints` (`ckpt-200`).

    Returns:
      The checkpoint prefix (without the `.index` suffix).

    Raises:
      CheckpointError: there is no such checkpoint.
    """
    directory = checkpoint_dir(model_dir)
    if checkpoint is None:
        latest = tf.train.latest_checkpoint(directory)
        if latest is None:
            raise CheckpointError(f"no checkpoint in {directory}")
        return latest
    candidates = [checkpoint, os.path.join(directory, checkpoint)]
    for candidate in candidates:
        if tf.io.gfile.exists(candidate + ".index"):
            return candidate
    raise CheckpointError(f"checkpoint {checkpoint!r} not found (looked for {candidates[0]}.index "
                          f"and {candidates[1]}.index)")
