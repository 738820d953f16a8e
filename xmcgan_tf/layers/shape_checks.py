"""Static shape assertions used at block and network boundaries.

The networks of this package have fully static shapes except for the batch dimension, so a
mismatch is a configuration error that should fail at trace time with the names of the tensor
and the layer involved, not deep inside a matmul.
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf


def assert_shape(tensor: tf.Tensor, expected: Sequence[int | None], name: str) -> None:
    """Raises if the static shape of `tensor` does not match `expected`.

    Args:
      tensor: any tensor (or Keras symbolic tensor) with a static rank.
      expected: the expected shape; `None` entries match any size (use it for the batch).
      name: what the tensor is, e.g. "GenBlock 'block1' output"; used in the error message.

    Raises:
      ValueError: the rank or a specified dimension differs; the message names `name`, the
        expected shape and the received shape.
    """
    actual = tuple(tensor.shape)
    expected = tuple(expected)
    if len(actual) != len(expected) or any(
            want is not None and got is not None and want != got
            for want, got in zip(expected, actual)):
        shown = ", ".join("?" if dim is None else str(dim) for dim in expected)
        raise ValueError(f"{name}: expected shape ({shown}), received {actual}")
