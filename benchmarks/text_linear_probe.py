r"""Can a linear layer read each attribute of a scene from its caption's embedding?

    PYTHONPATH=. .venv/bin/python -m benchmarks.text_linear_probe \
        --data_dir demo/data/synthetic_64

The cosine between two captions' vectors (`benchmarks.text_attribute_similarity`) says how far
apart they are, not whether a network can tell them apart: a large part shared by every caption
pushes all cosines towards 1 without hiding anything from a linear layer. This probe asks the
question G's and D's first (linear) layers face. On the synthetic scenes with one object (no
question which object a caption names first), it fits a ridge classifier from the caption
embedding to each attribute of the object, on five caption draws (the evaluation's caption draws
of seeds 0–4) of each of the first `--num_train` training scenes, and reports its accuracy on
one caption of each `val` scene:
  - shape, colour: every caption names them;
  - size: the captions that state it (`states_size`);
  - cell (3 × 3 grid): the captions that state where the object is (`states_position`).

The classifier is least squares on one-hot targets over standardised features with an L2
penalty (closed form, no iterations), the plainest linear readout.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from absl import app
from absl import flags

from data_tools import synthetic_scenes
from xmcgan_tf.data import input_pipeline
from xmcgan_tf.data import sentence_embedding

_DATA_DIR = flags.DEFINE_string("data_dir", None, "Synthetic scenes dataset (with objects).")
_NUM_TRAIN = flags.DEFINE_integer("num_train", 2000, "Training scenes the probe is fitted on.")
_NUM_VAL = flags.DEFINE_integer("num_val", 500, "Validation scenes it is scored on.")
_RIDGE = flags.DEFINE_float("ridge", 10.0, "L2 penalty of the classifier.")
_EMBEDDINGS = flags.DEFINE_list("sentence_embeddings",
                                [sentence_embedding.OFFICIAL, sentence_embedding.MASKED_MEAN],
                                "Sentence vectors to probe.")

# attribute: (number of classes, the caption flag that must be set, or None).
ATTRIBUTES = {
    "shape": (len(synthetic_scenes.SHAPES), None),
    "colour": (len(synthetic_scenes.COLORS), None),
    "size": (len(synthetic_scenes.SIZES), "states_size"),
    "cell": (synthetic_scenes.GRID ** 2, "states_position"),
}


def probe_accuracy(train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray,
                   val_y: np.ndarray, num_classes: int, ridge: float) -> float:
    """Held-out accuracy of a ridge classifier.

    Args:
      train_x: [N, D] features; train_y: [N] int labels in [0, num_classes).
      val_x: [M, D] features; val_y: [M] int labels.
      num_classes: K.
      ridge: L2 penalty (> 0) on the weights of the standardised features.

    Returns:
      The fraction of validation rows whose highest-scoring class is their label.
    """
    mean, scale = train_x.mean(0), train_x.std(0) + 1e-6
    x, xv = (train_x - mean) / scale, (val_x - mean) / scale
    targets = np.eye(num_classes)[train_y]
    weights = np.linalg.solve(x.T @ x + ridge * np.eye(x.shape[1]),
                              x.T @ (targets - targets.mean(0)))
    return float(np.mean(np.argmax(xv @ weights, axis=1) == val_y))


def _read(data_dir: str, split: str, num_scenes: int, seeds: Sequence[int],
          mode: str) -> dict[str, np.ndarray]:
    """Sentence vectors and first-object attributes of one caption per scene and seed."""
    fields = {"x": [], "shape": [], "colour": [], "size": [], "cell": [], "objects": [],
              "states_size": [], "states_position": []}
    for seed in seeds:
        for batch in input_pipeline.ordered_examples(
                data_dir, split, image_size=synthetic_scenes.MIN_IMAGE_SIZE, batch_size=250,
                num_samples=num_scenes, seed=seed, sentence_mode=mode, with_objects=True,
                with_images=False):
            shapes = batch["objects/shape"].numpy()
            fields["x"].append(batch["sentence"].numpy())
            fields["objects"].append(np.sum(shapes >= 0, axis=1))
            fields["shape"].append(shapes[:, 0])
            fields["colour"].append(batch["objects/color"].numpy()[:, 0])
            fields["size"].append(batch["objects/size"].numpy()[:, 0])
            fields["cell"].append(batch["objects/row"].numpy()[:, 0] * synthetic_scenes.GRID
                                  + batch["objects/col"].numpy()[:, 0])
            for flag in ("states_size", "states_position"):
                fields[flag].append(batch[flag].numpy())
    return {name: np.concatenate(values) for name, values in fields.items()}


def probe(train: dict[str, np.ndarray], val: dict[str, np.ndarray], ridge: float
          ) -> dict[str, tuple[float, float, int]]:
    """{attribute: (accuracy, majority-class rate, validation captions)} on one-object scenes.

    Args:
      train, val: `_read` outputs: "x" [N, D], "objects" [N], the attributes and caption flags.
      ridge: L2 penalty.
    """
    results = {}
    for attribute, (num_classes, flag) in ATTRIBUTES.items():
        rows = [(part["objects"] == 1) & ((part[flag] == 1) if flag else True)
                for part in (train, val)]
        train_y, val_y = train[attribute][rows[0]], val[attribute][rows[1]]
        accuracy = probe_accuracy(train["x"][rows[0]], train_y, val["x"][rows[1]], val_y,
                                  num_classes, ridge)
        majority = float(np.max(np.bincount(val_y, minlength=num_classes)) / len(val_y))
        results[attribute] = (accuracy, majority, int(len(val_y)))
    return results


def main(argv: Sequence[str]) -> None:
    del argv
    if not _DATA_DIR.value:
        raise app.UsageError("--data_dir is required")
    seeds = range(synthetic_scenes.CAPTIONS_PER_IMAGE)
    print("linear probe on one-object scenes: accuracy (majority class) [val captions]")
    for mode in _EMBEDDINGS.value:
        sentence_embedding.check_method(mode)
        train = _read(_DATA_DIR.value, "train", _NUM_TRAIN.value, seeds, mode)
        val = _read(_DATA_DIR.value, "val", _NUM_VAL.value, [0], mode)
        row = ", ".join(f"{name} {acc:.3f} ({majority:.3f}) [{count}]"
                        for name, (acc, majority, count) in probe(train, val, _RIDGE.value).items())
        print(f"{mode}: {row}")


if __name__ == "__main__":
    app.run(main)
