r"""How fast can the discriminator learn to check the shapes a caption names, when told directly?

    PYTHONPATH=. .venv/bin/python -m benchmarks.discriminator_shape_learning \
        --data_dir demo/data/synthetic_64 --df_dim 16 --steps 600 [--oracle_text] \
        [--no_spectral_norm] [--learning_rate 4e-4]

A fresh XMC-GAN discriminator (the CPU recipe's: centred input, Adam β = (0, 0.99)) is trained
on nothing but the question the generator needs it to answer: each step it sees 16 real
training scenes with their captions (target real) and the same 16 scenes redrawn with every
object's shape changed (`synthetic_scenes.make_scene(shape_map=...)`: same background,
colours, places and sizes, a random other shape per shape) with the same captions (target
fake), under the hinge loss on its projection logit. Every `--eval_every` steps it prints how
often its logit prefers the true scene over the redrawn one on the first 300 `val` scenes
(0.5: blind to shapes; 1.0: checks them always).

This is the most direct supervision a discriminator can get about shapes: in the GAN, D's
losses rarely need them (BENCHMARKS.md, "Fidelity"). Options that take the text side or the
weight constraint out of the question:
  --oracle_text       replace the sentence embedding by the multi-hot (shape, colour) set of the
                      scene's objects (40 of the D dimensions: the objects every caption
                      names, without language);
  --no_spectral_norm  use the raw kernels instead of W/σ (probe only: the substitution is made
                      on the spectral-norm layers' class for this process).
And one that the GAN can use: --augment passes both images of every pair through the
recipe's differentiable augmentation (`differentiable_augmentation.DifferentiableAugmentation`
with --translation_ratio, --cutout_ratio) before D, as `xmcgan.XMCGAN.augmentation` does.
"""

from __future__ import annotations

import argparse
import time

import keras
import numpy as np
import tensorflow as tf

from benchmarks import machine
from data_tools import synthetic_scenes
from xmcgan_tf.data import input_pipeline
from xmcgan_tf.data import schema
from xmcgan_tf.layers import differentiable_augmentation
from xmcgan_tf.layers import spectral_normalization
from xmcgan_tf.networks import discriminator as discriminator_lib

BATCH_SIZE = 16
VAL_SCENES = 300
NUM_SHAPES = len(synthetic_scenes.SHAPES)
NUM_COLORS = len(synthetic_scenes.COLORS)


def oracle_sentences(shapes: np.ndarray, colors: np.ndarray, embedding_dim: int) -> np.ndarray:
    """Multi-hot (shape, colour) sets: [N, K] int (-1 padding) -> [N, D] float32, 1 at
    shape·NC + colour for every object of the scene."""
    out = np.zeros([len(shapes), embedding_dim], np.float32)
    rows, slots = np.nonzero(shapes >= 0)
    out[rows, shapes[rows, slots] * NUM_COLORS + colors[rows, slots]] = 1.0
    return out


def load_pairs(data_dir: str, split: str, num_scenes: int, oracle_text: bool,
               seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(true images [N, S, S, 3], sentences [N, D], shape-changed images [N, S, S, 3]), images
    float32 in [0, 1]."""
    info = schema.read_dataset_info(data_dir)
    data_seed, size = int(info.extra["seed"]), int(info.image_size[0])
    rng = np.random.default_rng(seed)
    images, sentences, changed = [], [], []
    for batch in input_pipeline.ordered_examples(data_dir, split, image_size=size,
                                                 batch_size=100, num_samples=num_scenes,
                                                 with_objects=True):
        images.append(batch["image"].numpy())
        shapes = batch[schema.OBJECT_PREFIX + "shape"].numpy()
        if oracle_text:
            sentences.append(oracle_sentences(shapes, batch[schema.OBJECT_PREFIX + "color"]
                                              .numpy(), info.embedding_dim))
        else:
            sentences.append(batch["sentence"].numpy())
        for index in batch["index"].numpy():
            shape_map = [(s + rng.integers(1, NUM_SHAPES)) % NUM_SHAPES
                         for s in range(NUM_SHAPES)]
            scene = synthetic_scenes.make_scene(
                data_seed, int(index) + synthetic_scenes.SPLIT_INDEX_OFFSET[split], size,
                shape_map=shape_map)
            changed.append(scene.image.astype(np.float32) / 255.0)
    return np.concatenate(images), np.concatenate(sentences), np.stack(changed)


def train_probe(data_dir: str, *, df_dim: int, steps: int, learning_rate: float,
                oracle_text: bool, num_train: int, eval_every: int,
                augmentation: differentiable_augmentation.DifferentiableAugmentation | None = None,
                seed: int = 0) -> list[tuple[int, float, float]]:
    """Trains the probe; returns [(step, mean hinge loss of the last eval_every steps,
    val fraction preferring the true scene)]."""
    train = load_pairs(data_dir, "train", num_train, oracle_text, seed + 1)
    val = load_pairs(data_dir, "val", VAL_SCENES, oracle_text, seed + 2)
    size, dim = train[0].shape[1], train[1].shape[1]
    keras.utils.set_random_seed(seed)
    discriminator = discriminator_lib.Discriminator(image_size=size, df_dim=df_dim,
                                                    embedding_dim=dim, cond_size=16,
                                                    centered_input=True)
    discriminator(tf.zeros([1, size, size, 3]), tf.zeros([1, dim]), training=False)
    optimizer = keras.optimizers.Adam(learning_rate, beta_1=0.0, beta_2=0.99)
    variables = [v for v in discriminator.trainable_variables
                 if "region_projection" not in v.path]  # L_word's head: unused here

    @tf.function
    def step(images, sentences, changed):
        pairs = tf.concat([images, changed], 0)
        if augmentation is not None:
            pairs = augmentation(pairs)
        with tf.GradientTape() as tape:
            logits = discriminator(pairs,
                                   tf.concat([sentences, sentences], 0), training=True).logits
            loss = (tf.reduce_mean(tf.nn.relu(1.0 - logits[:BATCH_SIZE]))
                    + tf.reduce_mean(tf.nn.relu(1.0 + logits[BATCH_SIZE:])))
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        return loss

    def prefers_true() -> float:
        true = discriminator(val[0], val[1], training=False).logits.numpy()
        redrawn = discriminator(val[2], val[1], training=False).logits.numpy()
        return float(np.mean(true > redrawn))

    rng = np.random.default_rng(seed)
    curve, losses = [], []
    for i in range(1, steps + 1):
        index = rng.integers(0, len(train[0]), BATCH_SIZE)
        losses.append(float(step(train[0][index], train[1][index], train[2][index])))
        if i % eval_every == 0:
            curve.append((i, float(np.mean(losses[-eval_every:])), prefers_true()))
    return curve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_dir", required=True, help="a synthetic dataset directory")
    parser.add_argument("--df_dim", type=int, default=16, help="discriminator width df")
    parser.add_argument("--steps", type=int, default=600, help="training steps of batch 16")
    parser.add_argument("--learning_rate", type=float, default=4e-4, help="Adam learning rate")
    parser.add_argument("--num_train", type=int, default=1000,
                        help="training scenes (and their shape-changed copies) to draw from")
    parser.add_argument("--eval_every", type=int, default=100, help="steps between evaluations")
    parser.add_argument("--oracle_text", action="store_true",
                        help="condition on the scene's (shape, colour) set instead of the caption")
    parser.add_argument("--no_spectral_norm", action="store_true",
                        help="raw kernels instead of W/sigma in every D layer")
    parser.add_argument("--augment", action="store_true",
                        help="differentiable augmentation (translation, cutout) of D's input")
    parser.add_argument("--translation_ratio", type=float, default=0.0625,
                        help="largest shift as a fraction of the image side (with --augment)")
    parser.add_argument("--cutout_ratio", type=float, default=0.25,
                        help="cutout square side as a fraction of the image side (with --augment)")
    args = parser.parse_args()
    if args.no_spectral_norm:
        spectral_normalization._SpectralNormalized.normalized_kernel = (
            lambda layer, training=False: layer.kernel)
    start = time.time()
    curve = train_probe(args.data_dir, df_dim=args.df_dim, steps=args.steps,
                        learning_rate=args.learning_rate, oracle_text=args.oracle_text,
                        num_train=args.num_train, eval_every=args.eval_every,
                        augmentation=differentiable_augmentation.DifferentiableAugmentation(
                            translation_ratio=args.translation_ratio,
                            cutout_ratio=args.cutout_ratio, seed=0) if args.augment else None)
    print(machine.describe())
    augmented = (f"translation {args.translation_ratio}, cutout {args.cutout_ratio}"
                 if args.augment else "off")
    print(f"df {args.df_dim}, lr {args.learning_rate}, text "
          f"{'oracle (shape, colour) set' if args.oracle_text else 'caption'}, spectral norm "
          f"{'off' if args.no_spectral_norm else 'on'}, {args.num_train} training scenes, "
          f"augmentation {augmented}; {time.time() - start:.0f} s")
    print("| step | hinge loss (chance 2.0) | val: D prefers the true scene |")
    print("|---:|---:|---:|")
    for step, loss, preference in curve:
        print(f"| {step} | {loss:.3f} | {preference:.3f} |")


if __name__ == "__main__":
    main()
