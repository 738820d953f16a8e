r"""Does a plain GAN learn the synthetic shapes within a CPU budget? An unconditional DCGAN.

    PYTHONPATH=. .venv/bin/python -m benchmarks.plain_gan_shapes \
        --data_dir demo/data/synthetic_64 --evaluator_dir demo/evaluator \
        [--steps 2400] [--batch_size 64] [--width 32] [--report_every 800] [--output_dir DIR]

The reference the XMC-GAN runs are measured against: the DCGAN of Radford et al. (2016) at
64 px (G: Dense → 4×4×8w, transposed convolutions 4w, 2w, w, 3 with batch norm and ReLU, tanh;
D: strided 4×4 convolutions w, 2w, 4w, 8w with leaky ReLU 0.2 and batch norm after the first,
Dense(1)), the non-saturating loss, Adam 2e-4 with β1 = 0.5, trained on the images alone (no
text). Every `--report_every` steps it draws 500 images and prints the shape mix the domain
evaluator finds in them (`drawn_shapes.shape_shares`; the real scenes hold each of the five
shapes about 0.2 of the time), and writes a grid of 32 samples to
`--output_dir/step_N.png`. A shape that stays near 0 is one that this GAN core does not learn
to draw within the budget, with no text and no XMC-GAN network involved.

Legend: B batch, w width, S = 64.
"""

from __future__ import annotations

import argparse
import os
import time

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from benchmarks import drawn_shapes
from data_tools import synthetic_scenes
from xmcgan_tf import files
from xmcgan_tf import grids
from xmcgan_tf.data import input_pipeline
from xmcgan_tf.evaluation import domain_evaluator

IMAGE_SIZE = 64
Z_DIM = 128
LEAKY_SLOPE = 0.2
LEARNING_RATE = 2e-4
BETA_1 = 0.5
REPORT_IMAGES = 500
GRID_IMAGES = 32


def build_networks(width: int) -> tuple[keras.Model, keras.Model]:
    """DCGAN G ([B, Z_DIM] → [B, 64, 64, 3] in [−1, 1]) and D ([B, 64, 64, 3] → [B, 1])."""
    g_layers = [layers.Input((Z_DIM,)), layers.Dense(4 * 4 * 8 * width, use_bias=False),
                layers.Reshape((4, 4, 8 * width)), layers.BatchNormalization(), layers.ReLU()]
    for channels in (4 * width, 2 * width, width):
        g_layers += [layers.Conv2DTranspose(channels, 4, 2, padding="same", use_bias=False),
                     layers.BatchNormalization(), layers.ReLU()]
    g_layers.append(layers.Conv2DTranspose(3, 4, 2, padding="same", activation="tanh"))
    d_layers = [layers.Input((IMAGE_SIZE, IMAGE_SIZE, 3)),
                layers.Conv2D(width, 4, 2, padding="same"), layers.LeakyReLU(LEAKY_SLOPE)]
    for channels in (2 * width, 4 * width, 8 * width):
        d_layers += [layers.Conv2D(channels, 4, 2, padding="same", use_bias=False),
                     layers.BatchNormalization(), layers.LeakyReLU(LEAKY_SLOPE)]
    d_layers += [layers.Flatten(), layers.Dense(1)]
    return keras.Sequential(g_layers, name="dcgan_generator"), keras.Sequential(
        d_layers, name="dcgan_discriminator")


def make_train_step(generator: keras.Model, discriminator: keras.Model):
    """One joint update of the non-saturating GAN on real images [B, 64, 64, 3] in [0, 1];
    returns a tf.function giving (D loss, G loss)."""
    g_optimizer = keras.optimizers.Adam(LEARNING_RATE, beta_1=BETA_1)
    d_optimizer = keras.optimizers.Adam(LEARNING_RATE, beta_1=BETA_1)

    @tf.function
    def step(images: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        z = tf.random.normal([tf.shape(images)[0], Z_DIM])
        with tf.GradientTape() as d_tape, tf.GradientTape() as g_tape:
            fakes = generator(z, training=True)
            real_logits = discriminator(images * 2.0 - 1.0, training=True)
            fake_logits = discriminator(fakes, training=True)
            d_loss = (tf.reduce_mean(tf.nn.softplus(-real_logits))
                      + tf.reduce_mean(tf.nn.softplus(fake_logits)))
            g_loss = tf.reduce_mean(tf.nn.softplus(-fake_logits))
        d_variables, g_variables = (discriminator.trainable_variables,
                                    generator.trainable_variables)
        d_optimizer.apply_gradients(zip(d_tape.gradient(d_loss, d_variables), d_variables,
                                         strict=True))
        g_optimizer.apply_gradients(zip(g_tape.gradient(g_loss, g_variables), g_variables,
                                         strict=True))
        return d_loss, g_loss

    return step


def samples(generator: keras.Model, count: int, seed: int) -> np.ndarray:
    """[count, 64, 64, 3] float32 in [0, 1] from fixed noise."""
    z = tf.random.stateless_normal([count, Z_DIM], [seed, 0])
    return ((generator(z, training=False).numpy() + 1.0) / 2.0).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_dir", required=True, help="a 64 px synthetic dataset")
    parser.add_argument("--evaluator_dir", required=True, help="the saved domain evaluator")
    parser.add_argument("--steps", type=int, default=2400, help="training steps")
    parser.add_argument("--batch_size", type=int, default=64, help="images per step")
    parser.add_argument("--width", type=int, default=32, help="network width w")
    parser.add_argument("--report_every", type=int, default=800, help="steps between reports")
    parser.add_argument("--output_dir", default=None, help="where to write the sample grids")
    parser.add_argument("--seed", type=int, default=0, help="initialisation and noise seed")
    args = parser.parse_args()
    keras.utils.set_random_seed(args.seed)
    generator, discriminator = build_networks(args.width)
    step = make_train_step(generator, discriminator)
    evaluator = domain_evaluator.load(args.evaluator_dir)
    info = input_pipeline.dataset_info(args.data_dir)
    images = iter(input_pipeline.make_dataset(
        args.data_dir, "train", batch_size=args.batch_size, training=True,
        max_tokens=info.max_tokens, embedding_dim=info.embedding_dim, image_size=IMAGE_SIZE,
        random_flip=False, seed=args.seed))
    print(drawn_shapes.header("step"), flush=True)
    start, losses = time.time(), []
    for i in range(1, args.steps + 1):
        losses.append([float(v) for v in step(next(images)["image"])])
        if i % args.report_every and i != args.steps:
            continue
        drawn = samples(generator, REPORT_IMAGES, args.seed + 1)
        cells = domain_evaluator.predict_objects(domain_evaluator.predict(evaluator, drawn))
        per_image, shares = drawn_shapes.shape_shares(cells["shape"],
                                                      len(synthetic_scenes.SHAPES))
        d_loss, g_loss = np.mean(losses[-args.report_every:], axis=0)
        print(drawn_shapes.row(str(i), per_image, shares)
              + f"  (D {d_loss:.3f}, G {g_loss:.3f}, {time.time() - start:.0f} s)", flush=True)
        if args.output_dir:
            os.makedirs(args.output_dir, exist_ok=True)
            grid = grids.image_grid(drawn[:GRID_IMAGES], columns=8)
            files.write_atomic(os.path.join(args.output_dir, f"step_{i}.png"),
                               tf.io.encode_png(grid).numpy())


if __name__ == "__main__":
    main()
