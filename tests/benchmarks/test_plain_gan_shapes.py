import numpy as np
import tensorflow as tf

from benchmarks import plain_gan_shapes


def test_networks_map_noise_to_images_and_images_to_one_logit():
    generator, discriminator = plain_gan_shapes.build_networks(width=4)
    images = plain_gan_shapes.samples(generator, 3, seed=0)
    assert images.shape == (3, 64, 64, 3)
    assert images.min() >= 0.0 and images.max() <= 1.0
    assert discriminator(tf.constant(images), training=False).shape == (3, 1)


def test_discriminator_learns_to_tell_a_fixed_real_set_from_the_fakes():
    tf.keras.utils.set_random_seed(0)
    generator, discriminator = plain_gan_shapes.build_networks(width=4)
    step = plain_gan_shapes.make_train_step(generator, discriminator)
    real = tf.concat([tf.ones([4, 64, 32, 3]), tf.zeros([4, 64, 32, 3])], axis=2)  # half white
    before = generator.get_weights()
    d_losses = [float(step(real)[0]) for _ in range(30)]
    # Both networks move, and D soon separates this easy real set from G's early samples
    # (2 ln 2 ≈ 1.39 is a D that cannot tell them apart).
    after = generator.get_weights()
    assert any(not np.array_equal(a, b) for a, b in zip(before, after, strict=True))
    assert np.isfinite(d_losses).all()
    assert np.mean(d_losses[-5:]) < 0.5 * np.mean(d_losses[:5])
