"""Tests of xmcgan_tf.layers.spectral_normalization against a NumPy (float64) reference.

The reference runs the power iteration from the layer's own u, so the expected values are
exact; gradients are checked against the closed form and against finite differences of
x ⊛ W / σ(W) with v and u' held fixed (they are stop-gradient in the layer).
"""

import os
import subprocess
import sys

import keras
import numpy as np
import tensorflow as tf

from tests import layer_test_helper
from xmcgan_tf.layers import spectral_normalization
from xmcgan_tf.models import generator_loading
from xmcgan_tf.networks import discriminator

EPS = 1e-10
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _random(shape, seed, scale=1.0):
    return (scale * np.random.RandomState(seed).randn(*shape)).astype(np.float32)


def _l2n(x):
    return x / np.sqrt(np.sum(x ** 2) + EPS)


def _power_iteration(u, kernel):
    """u [1, C_out], kernel [..., C_out] -> v [1, fan_in], u' [1, C_out], σ (float64)."""
    matrix = np.asarray(kernel, np.float64).reshape(-1, kernel.shape[-1])
    u = np.asarray(u, np.float64)
    v = _l2n(u @ matrix.T)
    new_u = _l2n(v @ matrix)
    return v, new_u, float((v @ matrix @ new_u.T)[0, 0])


def _conv_same(x, kernel):
    """Stride-1 'same' convolution (odd kernel sizes), channels last, float64."""
    kh, kw = kernel.shape[:2]
    height, width = x.shape[1:3]
    padded = np.pad(x, [(0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)])
    return sum(padded[:, i:i + height, j:j + width, :] @ kernel[i, j]
               for i in range(kh) for j in range(kw))


def _set_weights(layer, kernel, bias, u):
    layer.kernel.assign(kernel)
    layer.bias.assign(bias)
    layer.vector_u.assign(u)


def _numeric_gradient(f, w, delta=1e-6):
    """Central finite differences of the scalar f at w (float64)."""
    grad = np.zeros_like(w)
    for index in np.ndindex(*w.shape):
        step = np.zeros_like(w)
        step[index] = delta
        grad[index] = (f(w + step) - f(w - step)) / (2 * delta)
    return grad


def _analytic_gradient(upstream_wrt_normalized, kernel, v, new_u, sigma):
    """∂L/∂W of L(W/σ) with σ = v·W·u'ᵀ and v, u' fixed: (G − ⟨G, W⟩/σ · vᵀu') / σ."""
    g = upstream_wrt_normalized.reshape(-1, kernel.shape[-1])
    w = kernel.reshape(-1, kernel.shape[-1]).astype(np.float64)
    grad = (g - np.sum(g * w) / sigma * (v.T @ new_u)) / sigma
    return grad.reshape(kernel.shape)


class SpectralDenseTest(tf.test.TestCase):

    def _layer(self, seed=0, c_in=4, c_out=3, kernel_scale=1.0):
        layer = spectral_normalization.SpectralDense(c_out, name="dense")
        layer.build((None, c_in))
        kernel = _random([c_in, c_out], seed, kernel_scale)
        bias = _random([c_out], seed + 1)
        u = _random([1, c_out], seed + 2)
        _set_weights(layer, kernel, bias, u)
        return layer, kernel, bias, u

    def test_layer_contract(self):
        # kernel + bias trainable, vector_u non-trainable; bfloat16 compute, float32 variables.
        layer_test_helper.run_layer_test(
            self, spectral_normalization.SpectralDense, {"units": 3, "name": "dense"},
            inputs=[_random([2, 5, 4], 0)], expected_output_shape=(2, 5, 3),
            expected_num_trainable_weights=2, expected_num_non_trainable_weights=1,
            call_kwargs={"training": True})

    def test_variables(self):
        layer, *_ = self._layer()
        self.assertEqual([v.path for v in layer.trainable_weights], ["dense/kernel", "dense/bias"])
        self.assertEqual([v.path for v in layer.non_trainable_weights], ["dense/vector_u"])
        self.assertEqual(tuple(layer.vector_u.shape), (1, 3))

    def test_forward_is_x_times_kernel_over_sigma(self):
        layer, kernel, bias, u = self._layer()
        x = _random([5, 4], 10)
        _, _, sigma = _power_iteration(u, kernel)
        want = x @ (kernel / (sigma + EPS)) + bias
        self.assertAllClose(layer(x, training=False), want, rtol=1e-5, atol=1e-5)
        # Training gives the same output (σ from the same u) and then stores u'.
        self.assertAllClose(layer(x, training=True), want, rtol=1e-5, atol=1e-5)

    def test_u_updates_only_in_training(self):
        layer, kernel, _, u = self._layer()
        x = _random([5, 4], 11)
        layer(x, training=False)
        layer(x)  # training defaults to False
        self.assertAllEqual(layer.vector_u, u)
        layer(x, training=True)
        _, new_u, _ = _power_iteration(u, kernel)
        self.assertAllClose(layer.vector_u, new_u, rtol=1e-5, atol=1e-6)

    def test_xla_training_step_matches_eager(self):
        layer, kernel, bias, u = self._layer()
        x = _random([5, 4], 18)

        @tf.function(jit_compile=True)
        def step(x):
            with tf.GradientTape() as tape:
                y = layer(x, training=True)
                loss = tf.reduce_sum(y ** 2)
            return y, tape.gradient(loss, layer.kernel)

        y, grad = step(x)
        _, new_u, sigma = _power_iteration(u, kernel)
        self.assertAllClose(y, x @ (kernel / sigma) + bias, rtol=1e-5, atol=1e-5)
        self.assertAllClose(layer.vector_u, new_u, rtol=1e-5, atol=1e-6)
        _set_weights(layer, kernel, bias, u)
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer(x, training=True) ** 2)
        self.assertAllClose(grad, tape.gradient(loss, layer.kernel), rtol=1e-5, atol=1e-5)

    def test_gradient_flows_through_sigma(self):
        layer, kernel, bias, u = self._layer()
        x = _random([5, 4], 12)
        upstream = _random([5, 3], 13)
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer(x, training=True) * upstream)
        grad_kernel, grad_bias = tape.gradient(loss, [layer.kernel, layer.bias])

        v, new_u, sigma = _power_iteration(u, kernel)
        x64, up64 = x.astype(np.float64), upstream.astype(np.float64)
        analytic = _analytic_gradient(x64.T @ up64, kernel, v, new_u, sigma)
        numeric = _numeric_gradient(
            lambda w: np.sum(up64 * (x64 @ (w / ((v @ w @ new_u.T)[0, 0] + EPS)))),
            kernel.astype(np.float64))
        self.assertAllClose(analytic, numeric, rtol=1e-5, atol=1e-7)
        self.assertAllClose(grad_kernel, analytic, rtol=1e-4, atol=1e-5)
        self.assertAllClose(grad_bias, upstream.sum(axis=0), rtol=1e-5, atol=1e-6)

    def test_gradient_differs_from_keras_spectral_normalization(self):
        """Same forward pass; Keras's wrapper differentiates at W/σ with σ a constant."""
        layer, kernel, bias, u = self._layer()
        x = _random([5, 4], 14)
        upstream = _random([5, 3], 15)
        inner = keras.layers.Dense(3)
        wrapped = keras.layers.SpectralNormalization(inner, power_iterations=1)
        wrapped.build((None, 4))
        inner.kernel.assign(kernel)
        inner.bias.assign(bias)
        wrapped.vector_u.assign(u)

        with tf.GradientTape() as tape:
            ours = layer(x, training=True)
            loss = tf.reduce_sum(ours * upstream)
        grad_ours = tape.gradient(loss, layer.kernel)
        with tf.GradientTape() as tape:
            theirs = wrapped(x, training=True)
            loss = tf.reduce_sum(theirs * upstream)
        grad_keras = tape.gradient(loss, inner.kernel)

        self.assertAllClose(ours, theirs, rtol=1e-4, atol=1e-4)
        self.assertAllClose(grad_keras, x.T @ upstream, rtol=1e-5, atol=1e-5)  # no 1/σ, no σ term
        v, new_u, sigma = _power_iteration(u, kernel)
        self.assertAllClose(
            grad_ours, _analytic_gradient(x.T @ upstream, kernel, v, new_u, sigma),
            rtol=1e-4, atol=1e-5)
        self.assertGreater(float(np.max(np.abs(np.array(grad_ours) - np.array(grad_keras)))),
                           1e-2)

    def test_sigma_converges_to_top_singular_value(self):
        layer, kernel, _, _ = self._layer(seed=3, c_in=8, c_out=6, kernel_scale=10.0)
        x = _random([2, 8], 16)
        for _ in range(50):
            layer(x, training=True)
        _, _, sigma = _power_iteration(np.array(layer.vector_u), kernel)
        top = np.linalg.svd(kernel.astype(np.float64), compute_uv=False)[0]
        self.assertAllClose(sigma, top, rtol=1e-4)
        normalized = np.array(layer.normalized_kernel())
        self.assertAllClose(np.linalg.svd(normalized, compute_uv=False)[0], 1.0, atol=1e-3)

    def test_mixed_precision_sigma_in_float32(self):
        layer, kernel, bias, u = self._layer()
        x = _random([5, 4], 17)
        previous = keras.mixed_precision.global_policy()
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
        try:
            mixed = spectral_normalization.SpectralDense(3)
            mixed.build((None, 4))
            _set_weights(mixed, kernel, bias, u)
            y = mixed(x, training=True)
        finally:
            keras.mixed_precision.set_global_policy(previous)
        self.assertEqual(y.dtype, tf.bfloat16)
        self.assertEqual(mixed.vector_u.dtype, "float32")
        # u' is computed in float32 from the float32 variables: same as the float32 layer.
        y_float32 = layer(x, training=True)
        self.assertAllClose(mixed.vector_u, layer.vector_u, rtol=1e-6, atol=1e-7)
        self.assertAllClose(tf.cast(y, tf.float32), y_float32, rtol=2e-2, atol=2e-2)

    def test_without_normalisation_the_raw_kernel_and_no_u(self):
        layer = spectral_normalization.SpectralDense(3, normalize=False, name="raw")
        layer.build((None, 4))
        kernel, bias = _random([4, 3], 0, 5.0), _random([3], 1)
        layer.kernel.assign(kernel)
        layer.bias.assign(bias)
        x = _random([5, 4], 12)
        self.assertAllClose(layer(x, training=True), x @ kernel + bias, rtol=1e-5, atol=1e-5)
        self.assertIsNone(layer.vector_u)
        self.assertEmpty(layer.non_trainable_weights)
        config = layer.get_config()
        self.assertFalse(config["normalize"])
        self.assertFalse(spectral_normalization.SpectralDense.from_config(config).normalize)

    def test_config_round_trip(self):
        layer = spectral_normalization.SpectralDense(
            7, use_bias=False, kernel_initializer="glorot_uniform", name="d")
        config = layer.get_config()
        self.assertEqual(config["units"], 7)
        self.assertFalse(config["use_bias"])
        clone = spectral_normalization.SpectralDense.from_config(config)
        self.assertEqual(clone.get_config(), config)
        clone.build((None, 2))
        self.assertIsNone(clone.bias)
        self.assertLen(clone.trainable_weights, 1)


class SpectralConv2DTest(tf.test.TestCase):

    def _layer(self, seed=0, c_in=2, c_out=3, kernel_size=3, kernel_scale=1.0):
        layer = spectral_normalization.SpectralConv2D(c_out, kernel_size, name="conv")
        layer.build((None, 5, 5, c_in))
        kernel = _random([kernel_size, kernel_size, c_in, c_out], seed, kernel_scale)
        bias = _random([c_out], seed + 1)
        u = _random([1, c_out], seed + 2)
        _set_weights(layer, kernel, bias, u)
        return layer, kernel, bias, u

    def test_layer_contract(self):
        layer = layer_test_helper.run_layer_test(
            self, spectral_normalization.SpectralConv2D,
            {"filters": 4, "kernel_size": 3, "name": "conv"},
            inputs=[_random([2, 5, 5, 3], 0)], expected_output_shape=(2, 5, 5, 4),
            expected_num_trainable_weights=2, expected_num_non_trainable_weights=1,
            call_kwargs={"training": True})
        self.assertEqual(tuple(layer.kernel.shape), (3, 3, 3, 4))
        self.assertEqual(tuple(layer.vector_u.shape), (1, 4))
        self.assertEqual(layer.filters, 4)

    def test_valid_padding(self):
        layer = spectral_normalization.SpectralConv2D(2, (3, 1), padding="valid")
        self.assertEqual(layer(_random([1, 5, 4, 3], 0)).shape, (1, 3, 4, 2))
        self.assertEqual(layer.compute_output_shape((1, 5, 4, 3)), (1, 3, 4, 2))

    def test_forward_is_conv_with_kernel_over_sigma(self):
        layer, kernel, bias, u = self._layer()
        x = _random([2, 5, 5, 2], 20)
        _, _, sigma = _power_iteration(u, kernel)
        want = _conv_same(x.astype(np.float64), kernel / (sigma + EPS)) + bias
        self.assertAllClose(layer(x, training=False), want, rtol=1e-5, atol=1e-5)
        self.assertAllEqual(layer.vector_u, u)
        self.assertAllClose(layer(x, training=True), want, rtol=1e-5, atol=1e-5)
        self.assertAllClose(layer.vector_u, _power_iteration(u, kernel)[1], rtol=1e-5,
                            atol=1e-6)

    def test_gradient_flows_through_sigma(self):
        layer, kernel, _, u = self._layer(seed=1)
        x = _random([2, 4, 4, 2], 21)
        upstream = _random([2, 4, 4, 3], 22)
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer(x, training=True) * upstream)
        grad_kernel = tape.gradient(loss, layer.kernel)

        v, new_u, sigma = _power_iteration(u, kernel)
        x64, up64 = x.astype(np.float64), upstream.astype(np.float64)
        matrix_sigma = lambda w: (v @ w.reshape(-1, 3) @ new_u.T)[0, 0]  # noqa: E731
        numeric = _numeric_gradient(
            lambda w: np.sum(up64 * _conv_same(x64, w / (matrix_sigma(w) + EPS))),
            kernel.astype(np.float64))
        self.assertAllClose(grad_kernel, numeric, rtol=1e-4, atol=1e-5)

    def test_sigma_converges_to_top_singular_value(self):
        layer, kernel, _, _ = self._layer(seed=4, c_in=4, c_out=6, kernel_scale=10.0)
        x = _random([1, 5, 5, 4], 23)
        for _ in range(50):
            layer(x, training=True)
        _, _, sigma = _power_iteration(np.array(layer.vector_u), kernel)
        top = np.linalg.svd(kernel.reshape(-1, 6).astype(np.float64), compute_uv=False)[0]
        self.assertAllClose(sigma, top, rtol=1e-4)


class DiscriminatorCheckpointTest(tf.test.TestCase):

    def test_checkpoint_restores_kernels_and_power_iteration_vectors(self):
        """Keyed by weight path, as the training checkpoints hold D (`weights_by_path`)."""
        def make(name):
            return discriminator.Discriminator(image_size=64, df_dim=2, embedding_dim=8,
                                               name=name)

        rng = np.random.RandomState(0)
        images = rng.uniform(size=(2, 64, 64, 3)).astype(np.float32)
        sentence = rng.randn(2, 8).astype(np.float32)
        model = make("d")
        model(images, sentence, training=True)
        model(images, sentence, training=True)  # u ≠ its initial value
        want = model(images, sentence, training=False)
        saved = generator_loading.weights_by_path(model)
        self.assertLen([key for key in saved if key.endswith("/vector_u")],
                       len(model.non_trainable_weights))
        path = tf.train.Checkpoint(model=saved).write(os.path.join(self.get_temp_dir(), "ckpt"))

        restored = make("d_restored")
        restored(images, sentence, training=False)
        loaded = generator_loading.weights_by_path(restored)
        self.assertEqual(sorted(loaded), sorted(saved))
        tf.train.Checkpoint(model=loaded).read(path).assert_consumed()
        for key, variable in loaded.items():
            self.assertAllEqual(variable, saved[key], msg=key)
        got = restored(images, sentence, training=False)
        for name in got._fields:
            self.assertAllClose(getattr(got, name), getattr(want, name), rtol=1e-6, atol=1e-6)


def check_mirrored_updates_every_replica_copy() -> None:
    """Run in a fresh process: MirroredStrategy over two logical CPUs, a training call in
    replica context; each replica's copy of u holds u' and the output matches one device."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        layer = spectral_normalization.SpectralConv2D(3, 3)
        layer.build((None, 4, 4, 2))
    kernel, u = layer.kernel.numpy(), layer.vector_u.numpy()
    x = _random([2, 4, 4, 2], 30)

    @tf.function
    def step():
        def replica_fn():
            with tf.GradientTape() as tape:
                y = layer(x, training=True)
                loss = tf.reduce_sum(y ** 2)
            return y, tape.gradient(loss, layer.kernel)
        return strategy.run(replica_fn)

    outputs, grads = step()
    _, new_u, sigma = _power_iteration(u, kernel)
    want = _conv_same(x.astype(np.float64), kernel / (sigma + EPS)) + layer.bias.numpy()
    for y, grad in zip(strategy.experimental_local_results(outputs),
                       strategy.experimental_local_results(grads)):
        np.testing.assert_allclose(y.numpy(), want, rtol=1e-5, atol=1e-5)
        assert grad is not None
    copies = layer.vector_u.value.values
    assert len(copies) == 2, copies
    for copy in copies:
        np.testing.assert_allclose(copy.numpy(), new_u, rtol=1e-5, atol=1e-6)


class MirroredStrategyTest(tf.test.TestCase):

    def test_mirrored_updates_every_replica_copy(self):
        code = ("from tests.layers import test_spectral_normalization as m; "
                "m.check_mirrored_updates_every_replica_copy()")
        result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                                text=True, env={**os.environ, "PYTHONPATH": REPO})
        self.assertEqual(result.returncode, 0, result.stderr[-4000:])


if __name__ == "__main__":
    tf.test.main()
