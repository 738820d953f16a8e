"""Per-replica loss scaling and cross-replica gathering of contrastive negatives (STYLE rule 5).

Every loss in `xmcgan_tf.losses` is a per-replica mean: the training step is written as a
single-replica view, and `scale_for_replicas` divides the summed loss by the number of replicas
exactly once, inside the gradient tape, so that `tf.distribute`'s summed gradients equal the
gradients of the global-batch mean. With `global_negatives=True` the contrastive losses call
`gather_replicas` to use every replica's examples as negatives; `replica_id` gives the offset of
the local examples inside the gathered batch.

Legend: B per-replica batch, G = B · num_replicas global batch.
"""

from __future__ import annotations

import tensorflow as tf


def num_replicas() -> int:
    """Number of replicas of the current `tf.distribute` strategy (1 outside any strategy)."""
    return int(tf.distribute.get_strategy().num_replicas_in_sync)


def scale_for_replicas(loss: tf.Tensor) -> tf.Tensor:
    """Divides a per-replica mean loss by the number of replicas in sync.

    Call once per loss, inside the gradient tape, on the value whose gradient is taken:
    `tf.distribute` sums the replicas' gradients, so the sum of the scaled per-replica losses
    equals the mean loss over the global batch.

    Args:
      loss: scalar float tensor, a mean over this replica's examples.

    Returns:
      Scalar of the same dtype: `loss / num_replicas_in_sync` (unchanged outside a strategy).
    """
    loss = tf.convert_to_tensor(loss)
    if not loss.dtype.is_floating:
        raise TypeError(f"scale_for_replicas expects a floating-point loss, got {loss.dtype}.")
    return loss / tf.cast(num_replicas(), loss.dtype)


def replica_id() -> tf.Tensor:
    """Index of the current replica in its sync group.

    Returns:
      Scalar int32: `replica_id_in_sync_group` inside a replica context, 0 in a cross-replica
      context or outside any strategy.
    """
    context = tf.distribute.get_replica_context()
    if context is None:
        return tf.constant(0, tf.int32)
    return tf.cast(context.replica_id_in_sync_group, tf.int32)


def gather_replicas(x: tf.Tensor) -> tf.Tensor:
    """All-gathers a per-replica tensor along the batch axis.

    Inside a replica context with more than one replica the result is the concatenation of all
    replicas' `x` in replica order, so this replica's rows start at `replica_id() * B`. Gradients
    flow back to every replica's input (`ReplicaContext.all_gather` is differentiable). Outside a
    replica context, or with a single replica, `x` is returned unchanged.

    Args:
      x: [B, ...] tensor; every replica must pass the same shape.

    Returns:
      [G, ...] tensor of the same dtype.
    """
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return x
    return context.all_gather(x, axis=0)
