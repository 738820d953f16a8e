r"""How fast can the discriminator learn to check the shapes a caption names, when told directly?

    PYTHONPATH=. .venv/bin/python -m benchmarks.discriminator_shape_learning \
        --data_dir demo/data/synthetic_64 --df_dim 16 --steps 600 [--oracle_text] \
        [--no_spectral_norm] [--learning_rate 4e-4] [--fresh_scenes] [--final_size 4|8|16] \
        [--plain]

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
  --no_spectral_norm  use the raw kernels instead of W/σ (`Discriminator(spectral_norm=False)`);
  --fresh_scenes      draw 16 new training scenes (and their shape-changed copies) every step
                      instead of sampling a fixed set, so nothing can be memorised (needs
                      --oracle_text: new captions would need the text encoder);
  --final_size N      where the recipe's D stops downsampling: its last features at 4 × 4 (as
                      released), 8 × 8 or 16 × 16 (the later blocks keep the size);
  --plain             instead of the XMC-GAN D, a plain stack of convolutions without spectral
                      norm or residual blocks (the domain evaluator's trunk without its batch
                      norm: conv3 + strided conv3 with 16 and 32 channels, then two conv3 with 64
                      and 256 channels at 16 × 16), with the same summed ReLU features and
                      projection head.
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
from xmcgan_tf.networks import discriminator as discriminator_lib

BATCH_SIZE = 16
VAL_SCENES = 300
# --plain: channels of the (conv3, strided conv3) stages and of the conv3 layers after them.
PLAIN_STAGE_CHANNELS = (16, 32)
PLAIN_TOP_CHANNELS = (64, 256)
# --final_size: the recipe D's downsampling per DiscBlock for each size of its last features.
FINAL_SIZE_DOWNSAMPLE = {4: (True, True, True, False), 8: (True, True, False, False),
                         16: (True, False, False, False)}
NUM_SHAPES = len(synthetic_scenes.SHAPES)
NUM_COLORS = len(synthetic_scenes.COLORS)
MAX_OBJECTS = 2  # objects per synthetic scene, at most


def oracle_sentences(shapes: np.ndarray, colors: np.ndarray, embedding_dim: int) -> np.ndarray:
    """Multi-hot (shape, colour) sets: [N, K] int (-1 padding) -> [N, D] float32, 1 at
    shape·NC + colour for every object of the scene."""
    out = np.zeros([len(shapes), embedding_dim], np.float32)
    rows, slots = np.nonzero(shapes >= 0)
    out[rows, shapes[rows, slots] * NUM_COLORS + colors[rows, slots]] = 1.0
    return out


class PlainDiscriminator(keras.Model):
    """A plain convolutional projection discriminator (see `--plain`).

    images [B, S, S, 3] in [0, 1] -> 2·x − 1 -> conv3(16), ReLU, conv3/2(16), ReLU, conv3(32),
    ReLU, conv3/2(32), ReLU, conv3(64), ReLU, conv3(256), ReLU -> x_pool = Σ_{h,w} [B, 256];
    logit = Dense(1)(x_pool) + Σ_c x_pool ⊙ Dense(256)(sentence).
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        layers = []
        for channels in PLAIN_STAGE_CHANNELS:
            layers += [keras.layers.Conv2D(channels, 3, padding="same", activation="relu"),
                       keras.layers.Conv2D(channels, 3, strides=2, padding="same",
                                           activation="relu")]
        layers += [keras.layers.Conv2D(channels, 3, padding="same", activation="relu")
                   for channels in PLAIN_TOP_CHANNELS]
        self.trunk = keras.Sequential(layers)
        self.logit = keras.layers.Dense(1)
        self.sentence_projection = keras.layers.Dense(PLAIN_TOP_CHANNELS[-1])

    def call(self, images: tf.Tensor, sentence: tf.Tensor,
             training: bool | None = None) -> discriminator_lib.DiscriminatorOutputs:
        x_pool = tf.reduce_sum(self.trunk(images * 2.0 - 1.0), axis=[1, 2])  # [B, 256]
        logits = self.logit(x_pool)[:, 0] + tf.reduce_sum(
            x_pool * self.sentence_projection(sentence), axis=-1)
        empty = tf.zeros([0, PLAIN_TOP_CHANNELS[-1]])
        return discriminator_lib.DiscriminatorOutputs(
            logits=logits, global_features=x_pool, region_features=empty,
            sentence_projection=empty, negative_projection=empty)


def random_shape_map(rng: np.random.Generator) -> list[int]:
    """shape_map for `synthetic_scenes.make_scene`: every shape s drawn as another, random one."""
    return [(s + rng.integers(1, NUM_SHAPES)) % NUM_SHAPES for s in range(NUM_SHAPES)]


def fresh_pairs(seed: int, size: int, count: int, embedding_dim: int,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`count` new training scenes (random indices of the train split, almost never repeated),
    their oracle sentences and shape-changed copies, as `load_pairs` returns them."""
    images, changed, shapes, colors = [], [], [], []
    for index in rng.integers(0, synthetic_scenes.SPLIT_INDEX_OFFSET["val"], count):
        shape_map = random_shape_map(rng)
        scene = synthetic_scenes.make_scene(seed, int(index), size)
        other = synthetic_scenes.make_scene(seed, int(index), size, shape_map=shape_map)
        images.append(scene.image.astype(np.float32) / 255.0)
        changed.append(other.image.astype(np.float32) / 255.0)
        padding = [-1] * (MAX_OBJECTS - len(scene.objects))
        shapes.append([o["shape"] for o in scene.objects] + padding)
        colors.append([o["color"] for o in scene.objects] + padding)
    return (np.stack(images), oracle_sentences(np.array(shapes), np.array(colors), embedding_dim),
            np.stack(changed))


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
            scene = synthetic_scenes.make_scene(
                data_seed, int(index) + synthetic_scenes.SPLIT_INDEX_OFFSET[split], size,
                shape_map=random_shape_map(rng))
            changed.append(scene.image.astype(np.float32) / 255.0)
    return np.concatenate(images), np.concatenate(sentences), np.stack(changed)


def train_probe(data_dir: str, *, df_dim: int, steps: int, learning_rate: float,
                oracle_text: bool, num_train: int, eval_every: int,
                augmentation: differentiable_augmentation.DifferentiableAugmentation | None = None,
                fresh_scenes: bool = False, plain: bool = False, spectral_norm: bool = True,
                seed: int = 0) -> list[tuple[int, float, float]]:
    """Trains the probe; returns [(step, mean hinge loss of the last eval_every steps,
    val fraction preferring the true scene)]."""
    if fresh_scenes and not oracle_text:
        raise ValueError("fresh scenes need the oracle text (their captions are not encoded)")
    val = load_pairs(data_dir, "val", VAL_SCENES, oracle_text, seed + 2)
    size, dim = val[0].shape[1], val[1].shape[1]
    data_seed = int(schema.read_dataset_info(data_dir).extra["seed"])
    train = None if fresh_scenes else load_pairs(data_dir, "train", num_train, oracle_text,
                                                 seed + 1)
    keras.utils.set_random_seed(seed)
    if plain:
        discriminator = PlainDiscriminator()
    else:
        discriminator = discriminator_lib.Discriminator(image_size=size, df_dim=df_dim,
                                                        embedding_dim=dim, cond_size=16,
                                                        centered_input=True,
                                                        spectral_norm=spectral_norm)
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
        if fresh_scenes:
            batch = fresh_pairs(data_seed, size, BATCH_SIZE, dim, rng)
        else:
            index = rng.integers(0, len(train[0]), BATCH_SIZE)
            batch = tuple(part[index] for part in train)
        losses.append(float(step(*batch)))
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
    parser.add_argument("--fresh_scenes", action="store_true",
                        help="new training scenes every step (needs --oracle_text)")
    parser.add_argument("--final_size", type=int, default=4, choices=sorted(FINAL_SIZE_DOWNSAMPLE),
                        help="size of the recipe D's last features (4 as released)")
    parser.add_argument("--plain", action="store_true",
                        help="a plain convolution stack instead of the XMC-GAN discriminator")
    args = parser.parse_args()
    if args.fresh_scenes and not args.oracle_text:
        parser.error("--fresh_scenes needs --oracle_text")
    # The recipe D has no argument for where it stops downsampling: set its 64 px table.
    discriminator_lib.BLOCK_DOWNSAMPLE[64] = FINAL_SIZE_DOWNSAMPLE[args.final_size]
    start = time.time()
    curve = train_probe(args.data_dir, df_dim=args.df_dim, steps=args.steps,
                        learning_rate=args.learning_rate, oracle_text=args.oracle_text,
                        num_train=args.num_train, eval_every=args.eval_every,
                        fresh_scenes=args.fresh_scenes, plain=args.plain,
                        spectral_norm=not args.no_spectral_norm,
                        augmentation=differentiable_augmentation.DifferentiableAugmentation(
                            translation_ratio=args.translation_ratio,
                            cutout_ratio=args.cutout_ratio, seed=0) if args.augment else None)
    print(machine.describe())
    augmented = (f"translation {args.translation_ratio}, cutout {args.cutout_ratio}"
                 if args.augment else "off")
    network = ("plain convolutions" if args.plain else
               f"XMC-GAN D, df {args.df_dim}, last features {args.final_size}x{args.final_size}, "
               f"spectral norm {'off' if args.no_spectral_norm else 'on'}")
    scenes = "fresh scenes every step" if args.fresh_scenes else f"{args.num_train} training scenes"
    print(f"{network}, lr {args.learning_rate}, text "
          f"{'oracle (shape, colour) set' if args.oracle_text else 'caption'}, {scenes}, "
          f"augmentation {augmented}; {time.time() - start:.0f} s")
    print("| step | hinge loss (chance 2.0) | val: D prefers the true scene |")
    print("|---:|---:|---:|")
    for step, loss, preference in curve:
        print(f"| {step} | {loss:.3f} | {preference:.3f} |")


if __name__ == "__main__":
    main()
