r"""Trains the synthetic-set domain evaluator and reports its held-out accuracy.

    python -m xmcgan_tf.train_evaluator --data_dir=DATA_DIR --output_dir=EVALUATOR_DIR \
      [--epochs=10] [--batch_size=16] [--max_train_examples=N]

DATA_DIR is a synthetic dataset (`python -m data_tools.synthetic_scenes`) with objects/*
ground truth; the evaluator learns on `--train_split` and is scored on `--val_split`. The
saved directory (evaluator.json, evaluator.weights.h5, accuracy.json) is what `python -m xmcgan_tf.evaluate
--evaluator_dir` reads. Exit status 1 when an attribute's held-out accuracy is below
`--min_accuracy`.
"""

from __future__ import annotations

import sys
from typing import Sequence

from absl import app
from absl import flags

from xmcgan_tf import cli
from xmcgan_tf.evaluation import domain_evaluator

_DATA_DIR = flags.DEFINE_string("data_dir", None, "Synthetic dataset directory.", required=True)
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Where the evaluator is saved.",
                                  required=True)
_EPOCHS = flags.DEFINE_integer("epochs", 10, "Passes over the training images.", lower_bound=1)
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 16, "Images per step.", lower_bound=1)
_LEARNING_RATE = flags.DEFINE_float("learning_rate", 3e-3, "Initial Adam learning rate "
                                    "(cosine-decayed to 0).")
_SEED = flags.DEFINE_integer("seed", 0, "Initialisation and shuffling seed.")
_TRAIN_SPLIT = flags.DEFINE_string("train_split", "train", "Split to train on.")
_VAL_SPLIT = flags.DEFINE_string("val_split", "val", "Held-out split for the accuracy.")
_MAX_TRAIN = flags.DEFINE_integer("max_train_examples", None, "Use the first N train images.")
_MAX_VAL = flags.DEFINE_integer("max_val_examples", None, "Use the first N held-out images.")
_IMAGE_SIZE = flags.DEFINE_enum("image_size", "64",
                                [str(s) for s in sorted(domain_evaluator.STAGE_WIDTHS)],
                                "Evaluator input size (images are resized to it).")
_WIDTH = flags.DEFINE_integer("width", 16, "First-stage channels.", lower_bound=1)
_JIT_COMPILE = flags.DEFINE_bool("jit_compile", True, "Compile the training step with XLA "
                                 "(faster steps after ~10 s of compilation).")
_MIN_ACCURACY = flags.DEFINE_float("min_accuracy", 0.95, "Required held-out accuracy of "
                                   "shape, color, size and position.")


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    with cli.exit_on(ValueError, FileNotFoundError):
        report = domain_evaluator.train(
            _DATA_DIR.value, _OUTPUT_DIR.value, epochs=_EPOCHS.value,
            batch_size=_BATCH_SIZE.value, learning_rate=_LEARNING_RATE.value, seed=_SEED.value,
            train_split=_TRAIN_SPLIT.value, val_split=_VAL_SPLIT.value,
            max_train_examples=_MAX_TRAIN.value, max_val_examples=_MAX_VAL.value,
            image_size=int(_IMAGE_SIZE.value), width=_WIDTH.value,
            jit_compile=_JIT_COMPILE.value)
    print(f"domain evaluator saved to {_OUTPUT_DIR.value} "
          f"({report['train_examples']} training images, {report['epochs']} epochs, "
          f"{report['train_seconds']} s)")
    print(f"held-out accuracy on {report['val_examples']} {_VAL_SPLIT.value} images:")
    print("| attribute | accuracy |\n|---|---|")
    for name in domain_evaluator.ATTRIBUTES:
        print(f"| {name} | {100.0 * report[name]:.2f} % |")
    low = [n for n in domain_evaluator.REQUIRED_ATTRIBUTES if report[n] < _MIN_ACCURACY.value]
    if low:
        print(f"below --min_accuracy={_MIN_ACCURACY.value}: {low}; train longer or on more "
              "images", file=sys.stderr)
        sys.exit(1)


def entry_point() -> None:
    """The `xmcgan-train-evaluator` console script (and `python -m xmcgan_tf.train_evaluator`)."""
    cli.run(main)


if __name__ == "__main__":
    entry_point()
