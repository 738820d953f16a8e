"""Tests of xmcgan_tf.networks.generator."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl.testing import parameterized

from xmcgan_tf.layers import spectral_normalization
from xmcgan_tf.networks import generator

BATCH, TOKENS, DIM, Z_DIM = 2, 6, 16, 16
# Real tokens per caption; the rest of the T = 6 positions are padding.
NUM_REAL = (4, 2)


def _inputs(seed=0, embedding_dim=DIM, z_dim=Z_DIM):
    rng = np.random.RandomState(seed)
    z = rng.randn(BATCH, z_dim).astype(np.float32)
    sentence = rng.randn(BATCH, embedding_dim).astype(np.float32)
    words = rng.randn(BATCH, TOKENS, embedding_dim).astype(np.float32)
    mask = np.zeros([BATCH, TOKENS], np.float32)
    for i, count in enumerate(NUM_REAL):
        mask[i, :count] = 1.0
    return z, sentence, words, mask


def _tiny(image_size=64, **kwargs):
    kwargs = {"gf_dim": 4, "z_dim": Z_DIM, "embedding_dim": DIM, **kwargs}
    return generator.Generator(image_size=image_size, **kwargs)


def _symbolic_build(model, embedding_dim, z_dim=128):
    model(keras.KerasTensor((1, z_dim)), keras.KerasTensor((1, embedding_dim)),
          keras.KerasTensor((1, 17, embedding_dim)), keras.KerasTensor((1, 17)))


def _trainable_count(model):
    return sum(int(np.prod(v.shape)) for v in model.trainable_weights)


class GeneratorTest(tf.test.TestCase, parameterized.TestCase):

    @parameterized.parameters(64, 128, 256)
    def test_output_shape_and_range(self, image_size):
        model = _tiny(image_size)
        images = model(*_inputs(), training=True)
        self.assertEqual(images.shape, (BATCH, image_size, image_size, 3))
        self.assertEqual(images.dtype, tf.float32)
        self.assertAllInRange(images, 0.0, 1.0)
        self.assertLen(model.global_blocks, 2)
        self.assertLen(model.spatial_blocks, len(generator.BLOCK_CHANNELS[image_size]) - 2)

    def test_channel_tables(self):
        model = _tiny(128, gf_dim=3)
        self.assertEqual([b.filters for b in model.global_blocks], [48, 24])
        self.assertEqual([b.filters for b in model.spatial_blocks], [12, 6, 3])
        model = _tiny(256, gf_dim=3)
        self.assertEqual([b.filters for b in model.spatial_blocks], [24, 12, 6, 3])
        model = _tiny(64, gf_dim=3)
        self.assertEqual([b.filters for b in model.spatial_blocks], [12, 6])

    def test_padded_words_do_not_change_output(self):
        model = _tiny()
        z, sentence, words, mask = _inputs(1)
        altered = words.copy()
        altered[0, NUM_REAL[0]:] = 50.0
        altered[1, NUM_REAL[1]:] = np.random.RandomState(9).randn(TOKENS - NUM_REAL[1], DIM)
        want = model(z, sentence, words, mask, training=True)
        self.assertAllClose(model(z, sentence, altered, mask, training=True), want,
                            rtol=1e-6, atol=1e-6)

        real_changed = words.copy()
        real_changed[0, 1] *= -1.0
        got = model(z, sentence, real_changed, mask, training=True)
        self.assertGreater(float(tf.reduce_max(tf.abs(got[0] - want[0]))), 1e-4)

    def test_no_spectral_normalization(self):
        model = _tiny()
        model(*_inputs())
        layers = list(model._flatten_layers(include_self=False))
        self.assertNotEmpty([layer for layer in layers if isinstance(layer, keras.layers.Conv2D)])
        self.assertEmpty([layer for layer in layers
                          if isinstance(layer, (keras.layers.SpectralNormalization,
                                                spectral_normalization.SpectralDense,
                                                spectral_normalization.SpectralConv2D))])

    def test_gradients_reach_every_weight(self):
        model = _tiny()
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(model(*_inputs(), training=True))
        grads = tape.gradient(loss, model.trainable_weights)
        for variable, grad in zip(model.trainable_weights, grads):
            self.assertIsNotNone(grad, variable.path)

    def test_config_round_trip(self):
        model = _tiny(attention_sharpness=7.0, name="g")
        inputs = _inputs(2)
        want = model(*inputs, training=False)
        config = model.get_config()
        self.assertEqual(config["attention_sharpness"], 7.0)
        clone = generator.Generator.from_config(config)
        self.assertEqual(clone.get_config(), config)
        clone(*inputs, training=False)
        clone.set_weights(model.get_weights())
        self.assertAllClose(clone(*inputs, training=False), want, rtol=1e-6, atol=1e-6)

    def test_conditioned_stem_reads_the_caption(self):
        z, sentence, words, mask = _inputs(3)
        released, conditioned = _tiny(), _tiny(conditioned_stem=True)
        released(z, sentence, words, mask)
        conditioned(z, sentence, words, mask)
        self.assertEqual(released.stem.kernel.shape[0], Z_DIM)
        self.assertEqual(conditioned.stem.kernel.shape[0], 2 * Z_DIM)
        # The stem's 4×4 features are Dense(c), c = [Dense(sentence), z]: the rows fed by the
        # sentence projection get a gradient, and another sentence moves the stem output.
        c = np.concatenate([conditioned.sentence_projection(sentence), z], axis=-1)
        other = np.concatenate([conditioned.sentence_projection(-sentence), z], axis=-1)
        self.assertGreater(float(np.abs(conditioned.stem(c) - conditioned.stem(other)).max()),
                           1e-3)
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(conditioned(z, sentence, words, mask, training=True))
        grad = tape.gradient(loss, conditioned.stem.kernel)
        self.assertGreater(float(tf.reduce_max(tf.abs(grad[:Z_DIM]))), 0.0)
        self.assertTrue(conditioned.get_config()["conditioned_stem"])
        self.assertFalse(released.get_config()["conditioned_stem"])

    def test_region_coordinates_enter_through_the_region_projection_only(self):
        inputs = _inputs(5)
        released, with_coordinates = _tiny(), _tiny(region_coordinates=True)
        released(*inputs)
        with_coordinates(*inputs)
        self.assertTrue(with_coordinates.get_config()["region_coordinates"])
        kernel = with_coordinates.region_projection.kernel
        self.assertEqual(kernel.shape[2], released.region_projection.kernel.shape[2] + 2)
        # With the two coordinate rows of the projection set to zero the generator is the
        # released one; with them the regions, and so the attention, depend on place.
        want = with_coordinates(*inputs, training=False)
        weights = [np.asarray(w) for w in with_coordinates.get_weights()]
        for i, w in enumerate(weights):
            if w.shape == tuple(kernel.shape):
                weights[i] = w.copy()
                weights[i][:, :, -2:] = 0.0
        with_coordinates.set_weights(weights)
        released.set_weights([w[:, :, :-2] if w.shape == tuple(kernel.shape) else w
                              for w in weights])
        got = with_coordinates(*inputs, training=False)
        self.assertAllClose(got, released(*inputs, training=False), rtol=1e-5, atol=1e-5)
        self.assertNotAllClose(got, want)

    def test_cond_size_moves_the_attention(self):
        model = _tiny(64, cond_size=8)
        self.assertLen(model.global_blocks, 1)
        self.assertLen(model.spatial_blocks, 3)
        self.assertEqual(model(*_inputs()).shape, (BATCH, 64, 64, 3))

    def test_mixed_bfloat16_forward_pass(self):
        previous = keras.mixed_precision.global_policy()
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
        try:
            model = _tiny()
            images = model(*_inputs(), training=True)
        finally:
            keras.mixed_precision.set_global_policy(previous)
        self.assertEqual(model.compute_dtype, "bfloat16")
        self.assertEqual(model.global_blocks[0].norm1.batch_norm.compute_dtype, "float32")
        self.assertTrue(all(v.dtype == "float32" for v in model.weights))
        self.assertEqual(images.dtype, tf.float32)
        self.assertAllInRange(images, 0.0, 1.0)

    def test_unknown_image_size_raises(self):
        with self.assertRaisesRegex(ValueError, r"image_size 96 .* allowed sizes are "
                                                r"\[64, 128, 256\]"):
            generator.Generator(image_size=96)

    def test_bad_cond_size_raises(self):
        with self.assertRaisesRegex(ValueError, "cond_size 12"):
            generator.Generator(image_size=64, cond_size=12)

    def test_bad_input_shape_raises(self):
        model = _tiny()
        z, sentence, words, mask = _inputs()
        with self.assertRaisesRegex(ValueError, "Generator input words"):
            model(z, sentence, words[..., :5], mask)


class GeneratorParameterCountTest(tf.test.TestCase, parameterized.TestCase):
    """Pinned parameter counts (trainable, all incl. BatchNorm moving statistics)."""

    @parameterized.parameters(
        # Paper widths: gf = 96, D = 768 (BERT-base), z_dim = 128.
        (64, 96, 768, 77_849_219, 77_863_811),
        (128, 96, 768, 78_507_779, 78_522_755),
        (256, 8, 32, 1_224_515, 1_226_019),
    )
    def test_parameter_count(self, image_size, gf_dim, embedding_dim, trainable, total):
        model = generator.Generator(image_size=image_size, gf_dim=gf_dim,
                                    embedding_dim=embedding_dim)
        _symbolic_build(model, embedding_dim)
        self.assertEqual(_trainable_count(model), trainable)
        self.assertEqual(model.count_params(), total)

    @pytest.mark.slow
    def test_parameter_count_256_paper_width(self):
        model = generator.Generator(image_size=256, gf_dim=96, embedding_dim=768)
        _symbolic_build(model, 768)
        self.assertEqual(_trainable_count(model), 92_865_539)
        self.assertEqual(model.count_params(), 92_883_587)
