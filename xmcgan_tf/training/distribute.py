"""Distribution strategies for training: default | mirrored | multi_worker | tpu.

All strategies run the same code path: `train_lib` builds the model, the optimizers and the
checkpoint inside `strategy.scope()`, feeds per-replica batches through
`strategy.distribute_datasets_from_function` and runs `XMCGAN.train_step` under `strategy.run`
inside a `tf.function`. The step is a single-replica view (losses scaled once by
`num_replicas_in_sync`), so a strategy only changes how many replicas there are.

- `default`: one device, no distribution (`tf.distribute.get_strategy()`).
- `mirrored`: `MirroredStrategy` over all local GPUs (or the listed devices, e.g. two logical
  CPUs in tests).
- `multi_worker`: `MultiWorkerMirroredStrategy`; the cluster and this worker's task come from
  the `TF_CONFIG` environment variable. Every worker runs the same command with the same
  MODEL_DIR; the chief (task `chief`, or `worker` 0 when there is no chief) writes the run
  directory, the others checkpoint into a scratch directory (`worker_scratch_dir`) because
  saving is a collective operation.
- `tpu`: `TPUStrategy` from `TPUClusterResolver(tpu=...)` (a TPU name, `grpc://` address or
  "local"); the TPU system is initialised before the strategy is made. Keep `jit_compile`
  off (TPU programs are compiled anyway) and use a global batch divisible by
  replicas × d_steps_per_g_step.
"""

from __future__ import annotations

import json
import os
from typing import Sequence

import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")


def make_strategy(name: str = "default", *, tpu: str | None = None,
                  devices: Sequence[str] | None = None) -> tf.distribute.Strategy:
    """Creates a distribution strategy by name.

    Args:
      name: one of STRATEGIES.
      tpu: TPU name or address for `tpu` ("local" for a TPU VM's own chips).
      devices: devices of `mirrored` (default: all local GPUs, or the CPU).

    Returns:
      The strategy.

    Raises:
      ValueError: unknown name, `multi_worker` without TF_CONFIG, or `tpu` without `tpu`.
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(devices=list(devices) if devices else None)
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError("strategy 'multi_worker' needs the TF_CONFIG environment variable "
                             "(cluster spec and this worker's task); see "
                             "https://www.tensorflow.org/guide/distributed_training")
        resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
        return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)
    if name == "tpu":
        if not tpu:
            raise ValueError("strategy 'tpu' needs --tpu (a TPU name, grpc:// address or "
                             "'local')")
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(f"unknown strategy {name!r}; choose one of {STRATEGIES}")


def strategy_name(strategy: tf.distribute.Strategy) -> str:
    """The STRATEGIES name of a strategy object (its class name if it is none of them)."""
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return "multi_worker"
    if isinstance(strategy, tf.distribute.MirroredStrategy):
        return "mirrored"
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return "tpu"
    if not tf.distribute.has_strategy() or strategy is tf.distribute.get_strategy():
        return "default"
    return type(strategy).__name__


def task(strategy: tf.distribute.Strategy) -> tuple[str | None, int]:
    """(task type, task id) of this process; (None, 0) outside a multi-worker cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(
            strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return None, 0
    return resolver.task_type, int(resolver.task_id or 0)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run directory (always True on a single host)."""
    task_type, task_id = task(strategy)
    if task_type is None:
        return True
    if task_type == "chief":
        return True
    cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    return task_type == "worker" and task_id == 0 and "chief" not in cluster


def worker_scratch_dir(model_dir: str, strategy: tf.distribute.Strategy) -> str:
    """Where a non-chief worker writes its (discarded) checkpoints: MODEL_DIR/workertemp_<id>."""
    task_type, task_id = task(strategy)
    return os.path.join(model_dir, f"workertemp_{task_type}_{task_id}")

