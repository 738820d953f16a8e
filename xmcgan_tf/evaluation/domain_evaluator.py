"""Domain evaluator: a small CNN that reads the synthetic scenes' objects (SPEC §1.3, §6).

Trained on real synthetic images with the `objects/*` ground truth, it predicts for each cell
of the G×G position grid (G = 3, row-major, cell = row·G + col):
  - shape_logits  [B, G², 1 + NS]: class 0 = empty cell, class s + 1 = shape s;
  - color_logits  [B, G², NC]: the colour of the object in the cell;
  - size_logits   [B, G², NZ]: its size;
so it recovers every object's shape, colour, size and position. It serves three metrics:
  - FID/KID features: `features` [B, G²·E], the penultimate (ReLU) layer of every cell,
    concatenated in row-major cell order;
  - IS logits: `object_class_logits` [B, NS·NC], the log-probability of the (shape, colour)
    class of an object drawn uniformly from the image, p(s, c | x) ∝ Σ_cells p(shape s at the
    cell)·p(colour c at the cell). The classes are the dataset's 40 image labels
    (label = shape·NC + colour); a scene with one confidently recognised object has a one-hot
    distribution, a two-object scene a two-peaked one, so the maximum IS is NS·NC;
  - object accuracy: `predict_objects` decodes the per-cell arg-maxes.

Images of any size are resized (bilinear, antialiased) to the evaluator's `image_size`.
`python -m xmcgan_tf.train_evaluator` trains one and saves it to a directory (`save`/`load`).

Legend: B batch, S image size, E per-cell feature dimension, G grid size, NS shapes, NC colours,
NZ sizes, K objects per image (-1 padded).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from typing import Any, Mapping

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from xmcgan_tf import files
from xmcgan_tf.data import input_pipeline
from xmcgan_tf.data import schema
from xmcgan_tf.evaluation import real_statistics

CONFIG_FILE = "evaluator.json"
WEIGHTS_FILE = "evaluator.weights.h5"
ACCURACY_FILE = "accuracy.json"

# Channel multipliers (× width) of the stride-2 stages, keyed by the evaluator's input size;
# every table ends at a 16×16 map (FEATURE_MAP_SIZE), followed by two 3×3 convolutions of
# 4·width channels at that size (receptive field ≥ 29 input pixels at 64 px, more than the
# largest object).
STAGE_WIDTHS = {
    32: (1,),  # 32 -> 16
    64: (1, 2),  # 64 -> 32 -> 16
    128: (1, 1, 2),  # 128 -> 64 -> 32 -> 16
}
FEATURE_MAP_SIZE = 16
# Training images whose features set `feature_scale` after training.
FEATURE_SCALE_IMAGES = 2000

# Attributes whose held-out accuracy is reported (see `attribute_accuracy`).
ATTRIBUTES = ("shape", "color", "size", "position", "empty_cells", "object", "scene")
# Attributes that must reach the required held-out accuracy (95 %).
REQUIRED_ATTRIBUTES = ("shape", "color", "size", "position")


def _stage_widths(image_size: int) -> tuple[int, ...]:
    if image_size not in STAGE_WIDTHS:
        raise ValueError(f"DomainEvaluator: image_size {image_size} is not supported; allowed "
                         f"sizes are {sorted(STAGE_WIDTHS)}")
    return STAGE_WIDTHS[image_size]


def _cell_bounds(size: int, grid: int) -> list[tuple[int, int]]:
    """Adaptive-pooling bins: cell i covers [floor(i·size/G), ceil((i+1)·size/G))."""
    return [(i * size // grid, -(-(i + 1) * size // grid)) for i in range(grid)]


class DomainEvaluator(keras.Model):
    """Per-cell object classifier of synthetic scenes.

    A convolutional trunk maps the image to a 16×16 feature map; each grid cell max-pools the
    map over its region (adaptive pooling), and heads shared by all cells (translation
    equivariant: a shape looks the same in every cell) classify the pooled cell feature.

    Args:
      num_shapes: NS.
      num_colors: NC.
      num_sizes: NZ.
      grid: G.
      image_size: input size the images are resized to; a key of STAGE_WIDTHS.
      width: channels of the first stage.
      cell_dim: E, per-cell feature dimension; the FID/KID features are the G² cell features
        concatenated in row-major order (F = G²·E), so they describe layout as well as content.
      feature_scale: constant factor on the FID/KID features; `train` sets it so that real
        training images have unit root-mean-square features, which puts domain FID and KID on
        a fixed, data-independent scale.
      **kwargs: `keras.Model` arguments.
    """

    def __init__(self, num_shapes: int = 5, num_colors: int = 8, num_sizes: int = 2,
                 grid: int = 3, image_size: int = 64, width: int = 16, cell_dim: int = 32,
                 feature_scale: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        widths = _stage_widths(image_size)
        for name, value in (("num_shapes", num_shapes), ("num_colors", num_colors),
                            ("num_sizes", num_sizes), ("width", width), ("cell_dim", cell_dim)):
            if value < 1:
                raise ValueError(f"DomainEvaluator: {name} must be >= 1, got {value}")
        if not 1 <= grid <= FEATURE_MAP_SIZE:
            raise ValueError(f"DomainEvaluator: grid must be in [1, {FEATURE_MAP_SIZE}], "
                             f"got {grid}")
        self.num_shapes = num_shapes
        self.num_colors = num_colors
        self.num_sizes = num_sizes
        self.grid = grid
        self.image_size = image_size
        self.width = width
        self.cell_dim = cell_dim
        self.feature_scale = float(feature_scale)
        self.stages = []
        for i, multiplier in enumerate(widths):
            channels = width * multiplier
            self.stages.append((
                keras.layers.Conv2D(channels, 3, padding="same", activation="relu",
                                    name=f"stage{i}_conv", dtype=self.dtype_policy),
                keras.layers.Conv2D(channels, 3, strides=2, padding="same", use_bias=False,
                                    name=f"stage{i}_down", dtype=self.dtype_policy),
                keras.layers.BatchNormalization(momentum=0.9, name=f"stage{i}_bn",
                                                dtype="float32"),
            ))
        self.top_convs = [
            keras.layers.Conv2D(4 * width, 3, padding="same", activation="relu",
                                name=f"top_conv{i}", dtype=self.dtype_policy)
            for i in range(2)
        ]
        self.cell_layer = keras.layers.Dense(cell_dim, activation="relu", name="cell_features",
                                             dtype=self.dtype_policy)
        self.shape_head = keras.layers.Dense(1 + num_shapes, name="shape_head",
                                             dtype=self.dtype_policy)
        self.color_head = keras.layers.Dense(num_colors, name="color_head",
                                             dtype=self.dtype_policy)
        self.size_head = keras.layers.Dense(num_sizes, name="size_head", dtype=self.dtype_policy)

    def call(self, images: tf.Tensor, training: bool | None = None) -> dict[str, tf.Tensor]:
        """Reads the objects of a batch of scenes.

        Args:
          images: [B, S, S, 3] float32 in [0, 1], any S.
          training: BatchNorm mode.

        Returns:
          dict of float32 `features` [B, G²·E], `shape_logits` [B, G², 1 + NS],
          `color_logits` [B, G², NC], `size_logits` [B, G², NZ].
        """
        images = tf.convert_to_tensor(images, tf.float32)
        if images.shape.rank != 4 or images.shape[-1] != 3:
            raise ValueError(f"DomainEvaluator expects [B, S, S, 3] images, got {images.shape}")
        if images.shape[1] != self.image_size or images.shape[2] != self.image_size:
            images = tf.image.resize(images, [self.image_size, self.image_size],
                                     method="bilinear", antialias=True)
        x = images * 2.0 - 1.0
        for conv, down, norm in self.stages:
            x = down(conv(x))
            x = tf.nn.relu(norm(tf.cast(x, tf.float32), training=training))
        for conv in self.top_convs:
            x = conv(x)  # [B, 16, 16, 4·width]
        bounds = _cell_bounds(FEATURE_MAP_SIZE, self.grid)
        cells = tf.stack([tf.reduce_max(x[:, r0:r1, c0:c1, :], axis=[1, 2])
                          for r0, r1 in bounds for c0, c1 in bounds], axis=1)  # [B, G², C]
        cell_features = tf.cast(self.cell_layer(cells), tf.float32)  # [B, G², E]
        return {
            "features": self.feature_scale * tf.reshape(
                cell_features, [-1, self.grid * self.grid * self.cell_dim]),
            "shape_logits": tf.cast(self.shape_head(cell_features), tf.float32),
            "color_logits": tf.cast(self.color_head(cell_features), tf.float32),
            "size_logits": tf.cast(self.size_head(cell_features), tf.float32),
        }

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(num_shapes=self.num_shapes, num_colors=self.num_colors,
                      num_sizes=self.num_sizes, grid=self.grid, image_size=self.image_size,
                      width=self.width, cell_dim=self.cell_dim,
                      feature_scale=self.feature_scale)
        return config


def object_class_logits(outputs: Mapping[str, tf.Tensor], eps: float = 1e-6) -> tf.Tensor:
    """IS logits: log p(class of a uniformly drawn object | image).

    Args:
      outputs: `DomainEvaluator` outputs (`shape_logits` [B, G², 1+NS], `color_logits`
        [B, G², NC]).
      eps: probability mass spread uniformly over the classes (keeps empty scenes finite).

    Returns:
      [B, NS·NC] float32 log-probabilities; class = shape·NC + colour (the image-label ids).
    """
    p_shape = tf.nn.softmax(outputs["shape_logits"])[:, :, 1:]  # [B, G², NS]
    p_color = tf.nn.softmax(outputs["color_logits"])  # [B, G², NC]
    joint = tf.einsum("bgs,bgc->bsc", p_shape, p_color)  # [B, NS, NC]
    joint = tf.reshape(joint, [tf.shape(joint)[0], -1])  # [B, NS·NC]
    classes = tf.cast(tf.shape(joint)[1], tf.float32)
    probabilities = (joint + eps / classes) / (tf.reduce_sum(joint, axis=1, keepdims=True) + eps)
    return tf.math.log(probabilities)


def predict_objects(outputs: Mapping[str, np.ndarray | tf.Tensor]) -> dict[str, np.ndarray]:
    """Per-cell arg-max predictions.

    Args:
      outputs: `DomainEvaluator` outputs (the three logits tensors).

    Returns:
      "shape" [B, G²] int64 (0 = empty, s + 1 = shape s), "color" [B, G²], "size" [B, G²].
    """
    return {name: np.argmax(np.asarray(outputs[f"{name}_logits"]), axis=-1).astype(np.int64)
            for name in ("shape", "color", "size")}


def cell_targets(objects: Mapping[str, np.ndarray], grid: int) -> dict[str, np.ndarray]:
    """Per-cell training targets from per-object ground truth.

    Args:
      objects: "shape", "color", "size", "row", "col" [N, K] int, -1 padding.
      grid: G.

    Returns:
      "shape" [N, G²] int32 (0 = empty, s + 1 = shape s), "color" and "size" [N, G²] int32
      (0 in empty cells, where they are masked out of the loss).

    Raises:
      ValueError: an object outside the grid, or two objects in one cell.
    """
    shape = np.asarray(objects["shape"])
    count = shape.shape[0]
    targets = {name: np.zeros((count, grid * grid), np.int32) for name in ("shape", "color",
                                                                           "size")}
    rows, cols = np.asarray(objects["row"]), np.asarray(objects["col"])
    for n, k in zip(*np.nonzero(shape >= 0)):
        if not (0 <= rows[n, k] < grid and 0 <= cols[n, k] < grid):
            raise ValueError(f"image {n}: object {k} at row {rows[n, k]}, col {cols[n, k]} is "
                             f"outside the {grid}x{grid} grid")
        cell = rows[n, k] * grid + cols[n, k]
        if targets["shape"][n, cell]:
            raise ValueError(f"image {n}: two objects in grid cell ({rows[n, k]}, {cols[n, k]}); "
                             "the domain evaluator needs at most one object per cell")
        targets["shape"][n, cell] = shape[n, k] + 1
        targets["color"][n, cell] = objects["color"][n, k]
        targets["size"][n, cell] = objects["size"][n, k]
    return targets


def attribute_accuracy(predictions: Mapping[str, np.ndarray],
                       targets: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Held-out accuracy per attribute.

    Args:
      predictions: `predict_objects` output, [N, G²] per field.
      targets: `cell_targets` output, [N, G²] per field.

    Returns:
      Fractions in [0, 1]: over ground-truth objects, "shape" (the object's cell predicts its
      shape), "color", "size", "position" (its cell is predicted non-empty) and "object" (all
      four right); over empty cells, "empty_cells" (predicted empty); over images, "scene"
      (every cell's occupancy, shape, colour and size right).
    """
    occupied = targets["shape"] > 0  # [N, G²]
    if not occupied.any():
        raise ValueError("no objects in the ground truth")
    right = {name: predictions[name] == targets[name] for name in ("shape", "color", "size")}
    position = predictions["shape"] > 0
    whole = right["shape"] & right["color"] & right["size"]
    cell_right = np.where(occupied, whole, predictions["shape"] == 0)
    empty = ~occupied
    return {
        "shape": float(right["shape"][occupied].mean()),
        "color": float(right["color"][occupied].mean()),
        "size": float(right["size"][occupied].mean()),
        "position": float(position[occupied].mean()),
        "empty_cells": float((~position)[empty].mean()) if empty.any() else 1.0,
        "object": float(whole[occupied].mean()),
        "scene": float(cell_right.all(axis=1).mean()),
    }


def vocabulary(info: schema.DatasetInfo) -> dict[str, Any]:
    """Object vocabulary of a synthetic dataset from `dataset_info.extra`."""
    missing = [k for k in ("shapes", "colors", "sizes") if k not in info.extra]
    if missing:
        raise schema.DatasetError(
            f"dataset_info.json has no object vocabulary {missing} in 'extra': the domain "
            "evaluator works only on the synthetic set written by data_tools.synthetic_scenes")
    return {"shapes": list(info.extra["shapes"]), "colors": list(info.extra["colors"]),
            "sizes": list(info.extra["sizes"]), "grid": int(info.extra.get("grid", 3))}


def load_split(data_dir: str, split: str, num_examples: int | None = None,
               batch_size: int = 256) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Real images and per-object ground truth of a synthetic split, in file order.

    Args:
      data_dir: synthetic dataset directory.
      split: split name.
      num_examples: first N images; None for all.
      batch_size: read batch size (does not change the result).

    Returns:
      images [N, S, S, 3] uint8 at the stored size, and objects "shape", "color", "size",
      "row", "col" [N, K] int64 (-1 padding), "label" [N] int64.
    """
    info = schema.read_dataset_info(data_dir)
    if not info.image_size or info.image_size[0] != info.image_size[1]:
        raise schema.DatasetError(f"{data_dir}: the domain evaluator needs square images of one "
                                  f"stored size; dataset_info.image_size is {info.image_size}")
    examples = input_pipeline.ordered_examples(data_dir, split, image_size=info.image_size[0],
                                               batch_size=batch_size, num_samples=num_examples,
                                               with_objects=True)
    images, objects = [], {f: [] for f in (*schema.OBJECT_FIELDS, "label")}
    width = 0
    for batch in examples:
        images.append(np.round(batch["image"].numpy() * 255.0).astype(np.uint8))
        for field in schema.OBJECT_FIELDS:
            value = batch[schema.OBJECT_PREFIX + field].numpy()
            width = max(width, value.shape[1])
            objects[field].append(value)
        objects["label"].append(batch["label"].numpy())
    if not images:
        raise schema.DatasetError(f"split {split!r} of {data_dir} is empty")
    padded = {f: np.concatenate([np.pad(v, [(0, 0), (0, width - v.shape[1])], constant_values=-1)
                                 for v in objects[f]]) for f in schema.OBJECT_FIELDS}
    padded["label"] = np.concatenate(objects["label"])
    return np.concatenate(images), padded


def _loss(outputs: Mapping[str, tf.Tensor], targets: Mapping[str, tf.Tensor]) -> tf.Tensor:
    """Training loss: the (1 + NS)-way cell CE averaged over all cells and, again, over the
    occupied cells (so that the few occupied cells are not drowned by the empty ones), plus the
    colour and size CE over the occupied cells."""
    ce = keras.losses.sparse_categorical_crossentropy
    occupied = tf.cast(targets["shape"] > 0, tf.float32)  # [B, G²]
    count = tf.maximum(tf.reduce_sum(occupied), 1.0)
    cell = ce(targets["shape"], outputs["shape_logits"], from_logits=True)  # [B, G²]
    shape = tf.reduce_mean(cell) + tf.reduce_sum(cell * occupied) / count
    color = tf.reduce_sum(ce(targets["color"], outputs["color_logits"], from_logits=True)
                          * occupied) / count
    size = tf.reduce_sum(ce(targets["size"], outputs["size_logits"], from_logits=True)
                         * occupied) / count
    return shape + color + size


def _mirror_half(rng: np.random.Generator, images: np.ndarray,
                 targets: Mapping[str, np.ndarray],
                 grid: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Mirrors a random half of a batch: images [B, S, S, 3] left-right, targets [B, G²] by
    column (cell (r, c) -> (r, G - 1 - c))."""
    flip = rng.random(len(images)) < 0.5  # [B]
    mirror = np.array([r * grid + grid - 1 - c for r in range(grid) for c in range(grid)])
    images = np.where(flip[:, None, None, None], images[:, :, ::-1], images)
    targets = {k: np.where(flip[:, None], v[:, mirror], v) for k, v in targets.items()}
    return images, targets


def predict(evaluator: DomainEvaluator, images: np.ndarray,
            batch_size: int = 256) -> dict[str, np.ndarray]:
    """Evaluator outputs on images ([N, S, S, 3] uint8, or float32 in [0, 1]), as numpy."""
    scale = 255.0 if np.asarray(images).dtype == np.uint8 else 1.0
    run = tf.function(lambda x: evaluator(tf.cast(x, tf.float32) / scale, training=False),
                      reduce_retracing=True)
    outputs: dict[str, list[np.ndarray]] = {}
    for lo in range(0, len(images), batch_size):
        for name, value in run(images[lo:lo + batch_size]).items():
            outputs.setdefault(name, []).append(value.numpy())
    return {name: np.concatenate(values) for name, values in outputs.items()}


def train(data_dir: str, output_dir: str, *, epochs: int = 10, batch_size: int = 16,
          learning_rate: float = 3e-3, seed: int = 0, train_split: str = "train",
          val_split: str = "val", max_train_examples: int | None = None,
          max_val_examples: int | None = None, image_size: int = 64, width: int = 16,
          cell_dim: int = 32, mirror_augment: bool = True,
          jit_compile: bool = True) -> dict[str, float]:
    """Trains a domain evaluator on a synthetic dataset and saves it to `output_dir`.

    Adam with a cosine-decayed learning rate over all steps. Afterwards `feature_scale` is set
    from the training images' features and the held-out accuracy on `val_split` is computed
    and saved with the model (`ACCURACY_FILE`).

    Args:
      data_dir: synthetic dataset directory (objects/* ground truth).
      output_dir: where `save` writes the evaluator.
      epochs: passes over the training images.
      batch_size: images per step.
      learning_rate: initial Adam learning rate.
      seed: initialisation and shuffling seed.
      train_split: split to train on.
      val_split: held-out split for the reported accuracy.
      max_train_examples: use only the first N training images (None = all).
      max_val_examples: use only the first N held-out images (None = all).
      image_size: evaluator input size (STAGE_WIDTHS key).
      width: first-stage channels.
      cell_dim: per-cell feature dimension E.
      mirror_augment: mirror a random half of each batch left-right, with the grid columns of
        its targets (valid because every synthetic shape is left-right symmetric).
      jit_compile: compile the training step with XLA (faster steps, ~10 s to compile).

    Returns:
      Held-out accuracy per attribute (`attribute_accuracy`), plus "train_examples",
      "val_examples", "epochs" and "train_seconds".
    """
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs ({epochs}) and batch_size ({batch_size}) must be >= 1")
    info = schema.read_dataset_info(data_dir)
    vocab = vocabulary(info)
    grid = vocab["grid"]
    keras.utils.set_random_seed(seed)
    train_images, train_objects = load_split(data_dir, train_split, max_train_examples)
    val_images, val_objects = load_split(data_dir, val_split, max_val_examples)
    train_targets = cell_targets(train_objects, grid)
    val_targets = cell_targets(val_objects, grid)
    evaluator = DomainEvaluator(num_shapes=len(vocab["shapes"]), num_colors=len(vocab["colors"]),
                                num_sizes=len(vocab["sizes"]), grid=grid, image_size=image_size,
                                width=width, cell_dim=cell_dim)
    evaluator(tf.zeros([1, *train_images.shape[1:]]), training=False)
    steps_per_epoch = max(1, len(train_images) // batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate,
                                                      decay_steps=epochs * steps_per_epoch)
    optimizer = keras.optimizers.Adam(schedule)
    optimizer.build(evaluator.trainable_variables)

    @tf.function(jit_compile=jit_compile)
    def train_step(images: tf.Tensor, targets: dict[str, tf.Tensor]) -> tf.Tensor:
        with tf.GradientTape() as tape:
            outputs = evaluator(tf.cast(images, tf.float32) / 255.0, training=True)
            loss = _loss(outputs, targets)
        gradients = tape.gradient(loss, evaluator.trainable_variables)
        optimizer.apply_gradients(zip(gradients, evaluator.trainable_variables))
        return loss

    rng = np.random.default_rng(seed)
    start = time.time()
    for epoch in range(epochs):
        order = rng.permutation(len(train_images))
        losses = []
        for step in range(steps_per_epoch):
            idx = np.sort(order[step * batch_size:(step + 1) * batch_size])
            images, targets = train_images[idx], {k: v[idx] for k, v in train_targets.items()}
            if mirror_augment:
                images, targets = _mirror_half(rng, images, targets, grid)
            losses.append(float(train_step(
                tf.constant(images), {k: tf.constant(v) for k, v in targets.items()})))
        logging.info("domain evaluator epoch %d/%d: loss %.4f (%.0f s)", epoch + 1, epochs,
                     np.mean(losses), time.time() - start)
    seconds = time.time() - start
    reference = predict(evaluator, train_images[:FEATURE_SCALE_IMAGES])["features"]
    evaluator.feature_scale = float(1.0 / max(np.sqrt(np.mean(np.square(reference))), 1e-12))
    accuracy = attribute_accuracy(predict_objects(predict(evaluator, val_images)), val_targets)
    report = {**accuracy, "train_examples": len(train_images), "val_examples": len(val_images),
              "epochs": epochs, "train_seconds": round(seconds, 1)}
    save(evaluator, output_dir, vocabulary=vocab, accuracy=report,
         training={"data_dir": os.path.abspath(data_dir), "train_split": train_split,
                   "val_split": val_split, "epochs": epochs, "batch_size": batch_size,
                   "mirror_augment": mirror_augment,
                   "learning_rate": learning_rate, "seed": seed,
                   "dataset": real_statistics.dataset_fingerprint(data_dir)})
    return report


def save(evaluator: DomainEvaluator, directory: str, *, vocabulary: Mapping[str, Any],
         accuracy: Mapping[str, float] | None = None,
         training: Mapping[str, Any] | None = None) -> None:
    """Writes the weights, the held-out accuracy and `evaluator.json` (model config, vocabulary,
    training facts) to `directory`; `evaluator.json` comes last (atomically), so its presence
    means a complete evaluator."""
    tf.io.gfile.makedirs(directory)
    evaluator.save_weights(os.path.join(directory, WEIGHTS_FILE))
    if accuracy is not None:
        with tf.io.gfile.GFile(os.path.join(directory, ACCURACY_FILE), "w") as f:
            f.write(json.dumps(dict(accuracy), indent=2, sort_keys=True))
    config = {"model": evaluator.get_config(), "vocabulary": dict(vocabulary),
              "training": dict(training or {})}
    files.write_json_atomic(os.path.join(directory, CONFIG_FILE), config)


def read_config(directory: str) -> dict[str, Any]:
    """`evaluator.json` of a saved evaluator; raises FileNotFoundError naming what to do."""
    path = os.path.join(directory, CONFIG_FILE)
    if not tf.io.gfile.exists(path) or not tf.io.gfile.exists(
            os.path.join(directory, WEIGHTS_FILE)):
        raise FileNotFoundError(
            f"{directory!r} holds no domain evaluator (expected {CONFIG_FILE} and "
            f"{WEIGHTS_FILE}); train one with `python -m xmcgan_tf.train_evaluator "
            f"--data_dir=DATA_DIR --output_dir={directory}`")
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def load(directory: str) -> DomainEvaluator:
    """Rebuilds a saved evaluator and restores its weights."""
    config = read_config(directory)
    evaluator = DomainEvaluator.from_config(config["model"])
    size = evaluator.image_size
    evaluator(tf.zeros([1, size, size, 3]), training=False)
    evaluator.load_weights(os.path.join(directory, WEIGHTS_FILE))
    return evaluator


def fingerprint(directory: str) -> str:
    """Hash of a saved evaluator's config and weights (keys cached real statistics)."""
    read_config(directory)
    digest = hashlib.sha256()
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        with tf.io.gfile.GFile(os.path.join(directory, name), "rb") as f:
            digest.update(f.read())
    return digest.hexdigest()[:16]
