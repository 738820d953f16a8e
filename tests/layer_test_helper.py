"""One shared check for Keras layers and blocks (the keras-hub `run_layer_test` pattern).

`run_layer_test` builds a layer from its constructor arguments, calls it on the given inputs and
checks, in one place for every layer of the package:
- the output shape(s);
- the numbers of trainable and non-trainable weights;
- the `get_config()` / `from_config()` round trip: same config, and with copied weights the same
  outputs;
- one training step: a gradient reaches every trainable weight and is finite, and an SGD update
  changes the trainable weights;
- under the `mixed_bfloat16` global policy (any "dtype" in the constructor arguments is
  dropped for this check): bfloat16 compute dtype, float32 variables, the expected
  output dtypes and finite outputs (the global policy is restored afterwards).
"""

from __future__ import annotations

from typing import Any, Sequence

import keras
import numpy as np
import tensorflow as tf


def _as_list(outputs: Any) -> list[tf.Tensor]:
    return list(outputs) if isinstance(outputs, (tuple, list)) else [outputs]


def _as_shape_list(expected: Any) -> list[tuple]:
    if expected and isinstance(expected[0], (tuple, list)):
        return [tuple(shape) for shape in expected]
    return [tuple(expected)]


def run_layer_test(test_case: tf.test.TestCase,
                   layer_cls: type[keras.layers.Layer],
                   init_kwargs: dict,
                   inputs: Sequence[Any],
                   expected_output_shape: Sequence[Any],
                   expected_num_trainable_weights: int,
                   expected_num_non_trainable_weights: int = 0,
                   call_kwargs: dict | None = None,
                   expected_bfloat16_output_dtypes: Sequence[str] | None = None,
                   ) -> keras.layers.Layer:
    """Runs the shared layer checks; returns the float32 layer that was built.

    Args:
      test_case: the calling `tf.test.TestCase`.
      layer_cls: the layer class under test.
      init_kwargs: constructor arguments.
      inputs: positional call arguments (tensors or arrays).
      expected_output_shape: one shape, or a sequence of shapes for a tuple output.
      expected_num_trainable_weights: number of trainable variables after building.
      expected_num_non_trainable_weights: number of non-trainable variables after building.
      call_kwargs: keyword call arguments, e.g. {"training": True}.
      expected_bfloat16_output_dtypes: dtype of each output under `mixed_bfloat16`; default
        "bfloat16" for all.

    Returns:
      The layer built under the float32 policy.
    """
    call_kwargs = dict(call_kwargs or {})
    inputs = [tf.convert_to_tensor(x) for x in inputs]

    layer = layer_cls(**init_kwargs)
    outputs = _as_list(layer(*inputs, **call_kwargs))

    # Output shapes.
    expected_shapes = _as_shape_list(expected_output_shape)
    test_case.assertLen(outputs, len(expected_shapes))
    for output, shape in zip(outputs, expected_shapes):
        test_case.assertEqual(tuple(output.shape), shape)

    # Weight counts.
    test_case.assertLen(layer.trainable_weights, expected_num_trainable_weights)
    test_case.assertLen(layer.non_trainable_weights, expected_num_non_trainable_weights)

    # get_config round trip; with the same weights the clone computes the same outputs.
    config = layer.get_config()
    clone = layer_cls.from_config(config)
    test_case.assertEqual(clone.get_config(), config)
    clone(*inputs, **call_kwargs)
    clone.set_weights(layer.get_weights())
    for got, want in zip(_as_list(clone(*inputs, **call_kwargs)),
                         _as_list(layer(*inputs, **call_kwargs))):
        test_case.assertAllClose(got, want, rtol=1e-5, atol=1e-5)

    # One training step.
    if layer.trainable_weights:
        with tf.GradientTape() as tape:
            loss = tf.add_n([tf.reduce_sum(tf.cast(y, tf.float32) ** 2)
                             for y in _as_list(layer(*inputs, **call_kwargs))])
        grads = tape.gradient(loss, layer.trainable_weights)
        for variable, grad in zip(layer.trainable_weights, grads):
            test_case.assertIsNotNone(grad, f"no gradient reaches {variable.path}")
            test_case.assertTrue(np.all(np.isfinite(grad)), f"non-finite gradient {variable.path}")
        before = [np.array(v) for v in layer.trainable_weights]
        keras.optimizers.SGD(learning_rate=0.1).apply_gradients(
            zip(grads, layer.trainable_weights))
        changed = [not np.array_equal(b, np.array(v))
                   for b, v in zip(before, layer.trainable_weights)]
        test_case.assertTrue(any(changed), "an SGD step changed no trainable weight")

    # Mixed precision.
    previous_policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        mixed_kwargs = {key: value for key, value in init_kwargs.items() if key != "dtype"}
        mixed = layer_cls(**mixed_kwargs)
        mixed_outputs = _as_list(mixed(*inputs, **call_kwargs))
        test_case.assertEqual(mixed.compute_dtype, "bfloat16")
        for variable in mixed.weights:
            test_case.assertEqual(variable.dtype, "float32", variable.path)
        dtypes = list(expected_bfloat16_output_dtypes or ["bfloat16"] * len(mixed_outputs))
        test_case.assertEqual([keras.backend.standardize_dtype(y.dtype) for y in mixed_outputs],
                              dtypes)
        for y in mixed_outputs:
            test_case.assertTrue(np.all(np.isfinite(tf.cast(y, tf.float32))))
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
    return layer
