"""Distribution strategies for training: default | mirrored | multi_worker | tpu.

All strategies run the same code path: `train_lib` builds the model, the optimizers and the
checkpoint inside `strategy.scope()`, reads one batch per worker (host) from an ordinary
`tf.data` iterator, splits it among the worker's replicas (`split_to_replicas`) and runs
`XMCGAN.train_step` under `strategy.run` inside a `tf.function`. The step is a single-replica
view (losses scaled once by `num_replicas_in_sync`), so a strategy only changes how many
replicas there are.

Why not `strategy.distribute_datasets_from_function`: its distributed iterators cannot be
saved in a `tf.train.Checkpoint` (TF 2.21), and exact resume needs the input position. A plain
per-worker `tf.data` iterator can be, and `worker_input_context` gives each worker its own
shard of the input exactly as `distribute_datasets_from_function` would.

- `default`: one device, no distribution (`tf.distribute.get_strategy()`).
- `mirrored`: `MirroredStrategy` over all local GPUs (or the listed devices, e.g. two logical
  CPUs in tests).
- `multi_worker`: `MultiWorkerMirroredStrategy`; the cluster and this worker's task come from
  the `TF_CONFIG` environment variable. Every worker runs the same command with the same
  MODEL_DIR; the chief (task `chief`, or `worker` 0 when there is no chief) writes the run
  directory, the others keep their checkpoints (their input positions) under
  `worker_dir`.
- `tpu`: `TPUStrategy` from `TPUClusterResolver(tpu=...)` (a TPU name, `grpc://` address or
  "local"); the TPU system is initialised before the strategy is made. Leave `jit_compile`
  off (TPU programs are compiled anyway; train_lib accepts it with `default` only, since XLA
  cannot compile a mirrored step's cross-replica updates) and use a per-update global batch
  divisible by the number of replicas. Batches are split among the cores by
  `experimental_distribute_values_from_function`; one host (a TPU VM or a single-host slice)
  feeds all cores.
"""

from __future__ import annotations

import json
import os
from typing import Mapping, Sequence

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


def worker_dir(model_dir: str, strategy: tf.distribute.Strategy) -> str:
    """Where a non-chief worker keeps its checkpoints: MODEL_DIR/workers/<task>_<id>.

    Every worker saves (saving is collective) and keeps its own checkpoints, because each
    holds the position of that worker's input pipeline; the chief's are the run's.
    """
    task_type, task_id = task(strategy)
    return os.path.join(model_dir, "workers", f"{task_type}_{task_id}")


def worker_index(strategy: tf.distribute.Strategy) -> int:
    """Index of this worker's input pipeline: the chief is 0, workers follow (TF_CONFIG)."""
    task_type, task_id = task(strategy)
    if task_type is None or task_type == "chief":
        return 0
    cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    return task_id + (1 if "chief" in cluster else 0)


def local_replicas(strategy: tf.distribute.Strategy) -> int:
    """Replicas on this worker (1 for the default strategy)."""
    if strategy.num_replicas_in_sync == 1:
        return 1
    return len(strategy.extended.worker_devices)


def worker_input_context(strategy: tf.distribute.Strategy) -> tf.distribute.InputContext:
    """The input context of this worker's pipeline, counted in workers, not replicas.

    `make_dataset(..., batch_size=GLOBAL, input_context=worker_input_context(s))` reads this
    worker's shards in batches of GLOBAL / num_workers, one per step, which
    `split_to_replicas` divides among the worker's replicas.
    """
    num_workers = strategy.num_replicas_in_sync // local_replicas(strategy)
    return tf.distribute.InputContext(num_input_pipelines=num_workers,
                                      input_pipeline_id=worker_index(strategy),
                                      num_replicas_in_sync=num_workers)


def split_to_replicas(strategy: tf.distribute.Strategy,
                      batch: Mapping[str, tf.Tensor]) -> Mapping[str, tf.Tensor]:
    """Splits a per-worker batch into per-replica batches (call inside the `tf.function`).

    Args:
      strategy: the strategy.
      batch: {name: [W, ...]} this worker's batch; W divisible by its replica count L.

    Returns:
      Per-replica values for `strategy.run`: replica r of this worker gets rows
      [r·W/L, (r+1)·W/L) (the batch itself with one replica).
    """
    count = local_replicas(strategy)

    def value_fn(context: tf.distribute.experimental.ValueContext):
        index = context.replica_id_in_sync_group % count
        return {name: tf.split(value, count, axis=0)[index] for name, value in batch.items()}

    return strategy.experimental_distribute_values_from_function(value_fn)
