"""Tests of xmcgan_tf.networks.discriminator."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl.testing import parameterized

from xmcgan_tf.layers import spectral_normalization
from xmcgan_tf.networks import discriminator

BATCH, DIM = 2, 16


def _inputs(image_size, seed=0, batch=BATCH, embedding_dim=DIM):
    rng = np.random.RandomState(seed)
    images = rng.uniform(size=(batch, image_size, image_size, 3)).astype(np.float32)
    sentence = rng.randn(batch, embedding_dim).astype(np.float32)
    return images, sentence


def _tiny(image_size=64, **kwargs):
    kwargs = {"df_dim": 4, "embedding_dim": DIM, **kwargs}
    return discriminator.Discriminator(image_size=image_size, **kwargs)


def _trainable_count(model):
    return sum(int(np.prod(v.shape)) for v in model.trainable_weights)


class DiscriminatorTest(tf.test.TestCase, parameterized.TestCase):

    @parameterized.parameters(64, 128, 256)
    def test_output_shapes(self, image_size):
        model = _tiny(image_size)
        outputs = model(*_inputs(image_size), training=True)
        self.assertIsInstance(outputs, discriminator.DiscriminatorOutputs)
        channels = 4 * discriminator.BLOCK_CHANNELS[image_size][-1]
        self.assertEqual(outputs.logits.shape, (BATCH,))
        self.assertEqual(outputs.global_features.shape, (BATCH, channels))
        self.assertEqual(outputs.region_features.shape, (BATCH, 16 * 16, DIM))
        self.assertEqual(outputs.sentence_projection.shape, (BATCH, channels))
        for value in outputs:
            self.assertEqual(value.dtype, tf.float32)

    def test_outputs_match_recomputation(self):
        """Images in [0, 1] as they are, regions at 16×16, x_pool = spatial SUM of ReLU, projection logit."""
        model = _tiny(64)
        images, sentence = _inputs(64, seed=1)
        outputs = model(images, sentence, training=False)

        x = model.optimized_block(images)  # 32×32, no rescale of the [0, 1] input
        features = []
        for block in model.blocks:
            x = block(x)
            features.append(np.array(x))
        # W / σ with the stored power-iteration vectors (inference does not update them).
        kernel = lambda layer: np.array(layer.normalized_kernel())  # noqa: E731
        region_conv = model.region_projection
        regions = features[0] @ kernel(region_conv)[0, 0] + np.array(region_conv.bias)
        x_pool = np.maximum(features[-1], 0.0).sum(axis=(1, 2))
        e = (sentence @ kernel(model.sentence_projection)
             + np.array(model.sentence_projection.bias))
        logits = (x_pool @ kernel(model.logit)[:, 0]
                  + np.array(model.logit.bias)[0] + (x_pool * e).sum(axis=-1))

        self.assertAllClose(outputs.region_features, regions.reshape(BATCH, 256, DIM),
                            rtol=1e-4, atol=1e-4)
        self.assertAllClose(outputs.global_features, x_pool, rtol=1e-4, atol=1e-4)
        self.assertAllClose(outputs.sentence_projection, e, rtol=1e-4, atol=1e-4)
        self.assertAllClose(outputs.logits, logits, rtol=1e-4, atol=1e-3)

    def test_negative_sentences_get_the_paired_sentences_projection(self):
        model = _tiny(64)
        images, sentence = _inputs(64, seed=4)
        negatives = np.random.RandomState(5).randn(BATCH, DIM).astype(np.float32)
        plain = model(images, sentence, training=False)
        self.assertEqual(plain.negative_projection.shape, (0, model.df_dim * 16))
        outputs = model(images, sentence, training=False, negative_sentences=negatives)
        # e of a negative is e of the same sentence in a paired row.
        as_paired = model(images, negatives, training=False)
        self.assertAllClose(outputs.negative_projection, as_paired.sentence_projection,
                            rtol=1e-5, atol=1e-6)
        for got, want in zip(outputs[:4], plain[:4]):
            self.assertAllClose(got, want, rtol=1e-5, atol=1e-6)
        with self.assertRaisesRegex(ValueError, "negative_sentences"):
            model(images, sentence, negative_sentences=negatives[:, :3])

    def test_centered_input_sees_images_in_minus_one_one(self):
        released = _tiny(64)
        centered = _tiny(64, centered_input=True)
        images, sentence = _inputs(64, seed=2)
        released(images, sentence)
        centered(images, sentence)
        centered.set_weights(released.get_weights())
        self.assertTrue(centered.get_config()["centered_input"])
        expected = released(images * 2.0 - 1.0, sentence, training=False)
        outputs = centered(images, sentence, training=False)
        for got, want in zip(outputs, expected):
            self.assertAllClose(got, want, rtol=1e-5, atol=1e-5)
        # The released input is different: [0, 1] as it is.
        self.assertNotAllClose(released(images, sentence, training=False).logits,
                               expected.logits)

    def test_spectral_norm_makes_the_logits_blind_to_the_kernels_scale(self):
        # With every bias 0 (their initial value) a spectrally normalised D gives the same
        # outputs when each kernel is doubled (W / σ(W) does not change); without the
        # constraint the raw kernels are used and the outputs change.
        images, sentence = _inputs(64, seed=5)
        for spectral_norm in (True, False):
            model = _tiny(64, spectral_norm=spectral_norm)
            before = model(images, sentence, training=False)
            for variable in model.trainable_weights:
                if variable.path.endswith("kernel"):
                    variable.assign(variable * 2.0)
            after = model(images, sentence, training=False)
            if spectral_norm:
                self.assertAllClose(after.logits, before.logits, rtol=1e-4, atol=1e-4)
            else:
                self.assertNotAllClose(after.logits, before.logits)
            self.assertEqual(model.get_config()["spectral_norm"], spectral_norm)
        self.assertEmpty(model.non_trainable_weights)  # no power-iteration vectors

    def test_coordinate_channels_enter_through_the_first_block_only(self):
        images, sentence = _inputs(64, seed=4)
        released = _tiny(64)
        with_coordinates = _tiny(64, coordinate_channels=True)
        released(images, sentence)
        with_coordinates(images, sentence)
        self.assertTrue(with_coordinates.get_config()["coordinate_channels"])
        # With the two coordinate rows of the first block's kernels set to zero, the D with
        # coordinates is the released D: the coordinates enter through those rows only.
        weights, widened = [], 0
        for own, plain in zip(with_coordinates.get_weights(), released.get_weights(),
                               strict=True):
            if own.shape != plain.shape:
                self.assertEqual(own.shape[2], plain.shape[2] + 2)
                own = own.copy()
                own[:, :, 3:] = 0.0
                widened += 1
            weights.append(own)
        self.assertEqual(widened, 2)  # conv1 and the shortcut of the optimized block
        with_coordinates.set_weights(weights)
        released.set_weights([w if w.ndim != 4 or w.shape[2] != 5 else w[:, :, :3]
                              for w in weights])
        expected = released(images, sentence, training=False)
        for got, want in zip(with_coordinates(images, sentence, training=False), expected,
                             strict=True):
            self.assertAllClose(got, want, rtol=1e-5, atol=1e-5)

    def test_channel_and_downsample_tables(self):
        model = _tiny(128, df_dim=3)
        self.assertEqual(model.optimized_block.filters, 3)  # df, as in the released code
        self.assertEqual([b.filters for b in model.blocks], [6, 12, 24, 48, 48])
        self.assertEqual([b.downsample for b in model.blocks], [True] * 4 + [False])
        model = _tiny(256, df_dim=3)
        self.assertEqual([b.filters for b in model.blocks], [6, 12, 24, 24, 48, 48])
        model = _tiny(64, df_dim=3)
        self.assertEqual([b.filters for b in model.blocks], [6, 12, 24, 48])
        self.assertEqual([b.downsample for b in model.blocks], [True, True, True, False])

    def test_spectral_normalization_on_every_conv_and_dense(self):
        model = _tiny()
        model(*_inputs(64))
        layers = list(model._flatten_layers(include_self=False))
        spectral = [layer for layer in layers
                    if isinstance(layer, (spectral_normalization.SpectralConv2D,
                                          spectral_normalization.SpectralDense))]
        # 64 px: 3 convs in each of the 5 blocks (all have a 1×1 shortcut: they downsample
        # or change channels) + region projection + logit + sentence projection.
        self.assertLen(spectral, 18)
        kernels = [v.path for v in model.trainable_weights if v.path.endswith("/kernel")]
        self.assertLen(kernels, 18)  # every kernel belongs to a spectral layer
        self.assertEmpty([layer for layer in layers
                          if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense,
                                                keras.layers.SpectralNormalization,
                                                keras.layers.BatchNormalization))])

    def test_power_iteration_runs_only_in_training(self):
        model = _tiny()
        inputs = _inputs(64)
        model(*inputs, training=False)
        vectors = [v for v in model.non_trainable_weights if "vector_u" in v.path]
        self.assertLen(vectors, 18)
        before = [np.array(v) for v in vectors]
        model(*inputs, training=False)
        self.assertTrue(all(np.array_equal(b, v) for b, v in zip(before, vectors)))
        model(*inputs, training=True)
        self.assertTrue(all(not np.array_equal(b, v) for b, v in zip(before, vectors)))

    def test_logits_depend_on_sentence(self):
        model = _tiny()
        images, sentence = _inputs(64)
        logits = model(images, sentence).logits
        self.assertNotAllClose(model(images, -sentence).logits, logits)

    @parameterized.parameters((64, 8), (64, 32), (128, 4))
    def test_cond_size(self, image_size, cond_size):
        model = _tiny(image_size, cond_size=cond_size)
        outputs = model(*_inputs(image_size))
        self.assertEqual(outputs.region_features.shape, (BATCH, cond_size * cond_size, DIM))

    def test_config_round_trip(self):
        model = _tiny(name="d")
        inputs = _inputs(64, seed=2)
        want = model(*inputs, training=False)
        config = model.get_config()
        clone = discriminator.Discriminator.from_config(config)
        self.assertEqual(clone.get_config(), config)
        clone(*inputs, training=False)
        clone.set_weights(model.get_weights())
        for got, expected in zip(clone(*inputs, training=False), want):
            self.assertAllClose(got, expected, rtol=1e-5, atol=1e-5)

    def test_mixed_bfloat16_forward_pass(self):
        previous = keras.mixed_precision.global_policy()
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
        try:
            model = _tiny()
            outputs = model(*_inputs(64), training=True)
        finally:
            keras.mixed_precision.set_global_policy(previous)
        self.assertEqual(model.compute_dtype, "bfloat16")
        self.assertEqual(model.blocks[0].conv1.compute_dtype, "bfloat16")
        self.assertTrue(all(v.dtype == "float32" for v in model.weights))
        for value in outputs:
            self.assertEqual(value.dtype, tf.float32)
            self.assertTrue(np.all(np.isfinite(value)))

    def test_unknown_image_size_raises(self):
        with self.assertRaisesRegex(ValueError, r"image_size 32 .* allowed sizes are "
                                                r"\[64, 128, 256\]"):
            discriminator.Discriminator(image_size=32)

    def test_bad_cond_size_raises(self):
        with self.assertRaisesRegex(ValueError, "cond_size 64 .* allowed"):
            discriminator.Discriminator(image_size=64, cond_size=64)

    def test_batch_mismatch_raises(self):
        model = _tiny()
        images, _ = _inputs(64, batch=4)
        _, sentence = _inputs(64, batch=2)
        with self.assertRaisesRegex(ValueError, "Discriminator input sentence"):
            model(images, sentence)


class DiscriminatorParameterCountTest(tf.test.TestCase, parameterized.TestCase):
    """Pinned parameter counts (trainable, all incl. the spectral-norm vectors)."""

    @parameterized.parameters(
        # Paper widths: df = 96, D = 768 (BERT-base).
        (64, 96, 768, 45_293_857, 45_305_090),
        (128, 96, 768, 87_911_713, 87_926_018),
        (256, 8, 32, 685_817, 687_170),
    )
    def test_parameter_count(self, image_size, df_dim, embedding_dim, trainable, total):
        model = discriminator.Discriminator(image_size=image_size, df_dim=df_dim,
                                            embedding_dim=embedding_dim)
        model(keras.KerasTensor((1, image_size, image_size, 3)),
              keras.KerasTensor((1, embedding_dim)))
        self.assertEqual(_trainable_count(model), trainable)
        self.assertEqual(model.count_params(), total)

    @pytest.mark.slow
    def test_parameter_count_256_paper_width(self):
        model = discriminator.Discriminator(image_size=256, df_dim=96, embedding_dim=768)
        model(keras.KerasTensor((1, 256, 256, 3)), keras.KerasTensor((1, 768)))
        self.assertEqual(_trainable_count(model), 99_415_585)
        self.assertEqual(model.count_params(), 99_432_194)
