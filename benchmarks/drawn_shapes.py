r"""Which shapes does a generator draw at all? The shape mix of its images.

    PYTHONPATH=. .venv/bin/python -m benchmarks.drawn_shapes --model_dir RUN \
        --checkpoint ckpt-1200 --data_dir demo/data/synthetic_64 --evaluator_dir demo/evaluator \
        [--num_samples 500] [--without_text]

G_ema draws one image for each of the first `--num_samples` captions of the synthetic set's
`val` split (with each example's z; `--without_text` feeds zeros for the sentence and the words,
for a generator trained with its text zeroed, i.e. unconditionally). The domain evaluator reads
every cell of its 3×3 grid; the script prints, for the generated and the real images, the
number of objects found per image and each shape's share of them. The real scenes hold every
shape about equally often (about 0.2 each): a shape whose share stays near 0 is one the
generator never draws, whatever the caption asks for. Unlike `shapes` (object_accuracy.
shape_confusion), which scores the named objects, this needs no caption, so it also measures
a generator trained without text, or any other image source (`shape_shares`).

Legend: N images, G² grid cells, NS shapes.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from data_tools import synthetic_scenes
from xmcgan_tf.data import input_pipeline
from xmcgan_tf.evaluation import domain_evaluator
from xmcgan_tf.models import generator_loading


def shape_shares(cell_shapes: np.ndarray, num_shapes: int) -> tuple[float, np.ndarray]:
    """Objects per image and each shape's share of the objects.

    Args:
      cell_shapes: [N, G²] int, the evaluator's per-cell shape (0 = empty, s + 1 = shape s).
      num_shapes: NS.

    Returns:
      (objects found per image, [NS] float64 shares summing to 1; all zeros when no cell holds
      an object).

    Raises:
      ValueError: not a 2-d array of N ≥ 1 images, or a value outside [0, NS].
    """
    cell_shapes = np.asarray(cell_shapes)
    if cell_shapes.ndim != 2 or len(cell_shapes) == 0:
        raise ValueError(f"cell_shapes must be [N, cells] with N >= 1; got shape "
                         f"{cell_shapes.shape}")
    if cell_shapes.min() < 0 or cell_shapes.max() > num_shapes:
        raise ValueError(f"cell_shapes values must lie in [0, {num_shapes}] (0 = empty); got "
                         f"[{cell_shapes.min()}, {cell_shapes.max()}]")
    counts = np.bincount(cell_shapes.ravel(), minlength=num_shapes + 1)[1:].astype(np.float64)
    objects = counts.sum()
    shares = counts / objects if objects else counts
    return float(objects / len(cell_shapes)), shares


def images_and_samples(model_dir: str, checkpoint: str | None, data_dir: str,
                       num_samples: int, without_text: bool) -> tuple[np.ndarray, np.ndarray]:
    """Real `val` images and G_ema's images for their captions.

    Returns:
      real [N, S, S, 3] and generated [N, S, S, 3] float32 in [0, 1].
    """
    loaded = generator_loading.load_generators(model_dir, checkpoint)
    config = loaded.run_info["generator_config"]
    examples = input_pipeline.make_dataset(
        data_dir, "val", batch_size=50, training=False,
        max_tokens=int(loaded.run_info["max_tokens"]),
        embedding_dim=int(config["embedding_dim"]), image_size=int(config["image_size"]),
        z_dim=int(config["z_dim"]),
        sentence_embedding=loaded.run_info.get("sentence_embedding", "official"))
    real, fake = [], []
    for batch in examples.take(-(-num_samples // 50)):
        sentence, words = batch["sentence"], batch["words"]
        if without_text:
            sentence, words = tf.zeros_like(sentence), tf.zeros_like(words)
        fake.append(loaded.generator_ema(batch["z"], sentence, words, batch["word_mask"],
                                         training=False).numpy())
        real.append(batch["image"].numpy())
    return (np.concatenate(real)[:num_samples],
            np.concatenate(fake)[:num_samples].astype(np.float32))


def header(first_column: str = "images") -> str:
    """The table's two header lines: FIRST_COLUMN | objects per image | one column per shape."""
    names = synthetic_scenes.SHAPES
    return (f"| {first_column} | objects per image | " + " | ".join(names) + " |\n"
            + "|---|---:|" + "---:|" * len(names))


def row(label: str, per_image: float, shares: np.ndarray) -> str:
    """One table line: label, objects per image, each shape's share."""
    return (f"| {label} | {per_image:.2f} | "
            + " | ".join(f"{share:.3f}" for share in shares) + " |")


def markdown(rows: Sequence[tuple[str, float, np.ndarray]]) -> str:
    """A table: images | objects per image | one column per shape."""
    return "\n".join([header()] + [row(*r) for r in rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_dir", required=True, help="training run directory")
    parser.add_argument("--checkpoint", default=None,
                        help="checkpoint name, e.g. ckpt-1200 (default: the latest)")
    parser.add_argument("--data_dir", required=True,
                        help="the synthetic dataset the run trained on (its val split)")
    parser.add_argument("--evaluator_dir", required=True, help="the saved domain evaluator")
    parser.add_argument("--num_samples", type=int, default=500, help="val captions to draw")
    parser.add_argument("--without_text", action="store_true",
                        help="zero sentence and words (a generator trained without text)")
    args = parser.parse_args()
    real, fake = images_and_samples(args.model_dir, args.checkpoint, args.data_dir,
                                    args.num_samples, args.without_text)
    evaluator = domain_evaluator.load(args.evaluator_dir)
    num_shapes = len(synthetic_scenes.SHAPES)
    rows = []
    for label, images in (("real", real), ("G_ema", fake)):
        cells = domain_evaluator.predict_objects(domain_evaluator.predict(evaluator, images))
        rows.append((label, *shape_shares(cells["shape"], num_shapes)))
    print(markdown(rows))


if __name__ == "__main__":
    main()
