r"""Does a trained discriminator check the shape a caption names? A counterfactual probe.

    PYTHONPATH=. .venv/bin/python -m benchmarks.shape_probe --model_dir RUN \
        --checkpoint ckpt-1500 --data_dir demo/data/synthetic_64 --num_samples 300

For the first `--num_samples` scenes of the synthetic set's `val` split, D scores the real
image with its caption (the caption `ordered_examples` draws) and the same scene redrawn with
every object's shape replaced (`synthetic_scenes.make_scene(shape_map=...)`: same background,
colours, places and sizes; the caption still names the original shapes), and, as the
reference, the real image with another scene's caption; and, for the scenes whose caption names
a place and that have an object off the centre column, the real image mirrored left-right (every
shape is left-right symmetric, so only the places named left and right are contradicted). It
prints, for each counterfactual, the mean projection logit and how often D prefers the true
image over it, by the logit and by the cosine of L_sent (x_pool against e). A D that checks
shapes (places) prefers the true image nearly always; 0.5 is a D blind to them (ties count as
not preferred). The generator learns shapes and places only from what D checks: L_G's hinge
term and L_sent(fake) use these same outputs.
"""

from __future__ import annotations

import argparse

import numpy as np
import tensorflow as tf

from data_tools import synthetic_scenes
from xmcgan_tf import run_dir
from xmcgan_tf.data import input_pipeline
from xmcgan_tf.data import schema
from xmcgan_tf.models import generator_loading
from xmcgan_tf.networks import discriminator as discriminator_lib

# Counterfactual shape maps (indices into synthetic_scenes.SHAPES).
NUM_SHAPES = len(synthetic_scenes.SHAPES)
COUNTERFACTUALS = {
    "every shape drawn as a circle": [0] * NUM_SHAPES,
    "every shape drawn as a square": [1] * NUM_SHAPES,
    "every shape replaced (s -> s + 2 mod 5)": [(s + 2) % NUM_SHAPES for s in range(NUM_SHAPES)],
}

# The place counterfactual: the image mirrored left-right, on the scenes whose caption names a
# place and that have an object outside the centre column.
CENTRE_COLUMN = synthetic_scenes.GRID // 2
MIRROR_CASE = "mirrored left-right (caption names a place; object off the centre column)"


def load_discriminator(model_dir: str,
                       checkpoint: str | None) -> discriminator_lib.Discriminator:
    """The run's D with the weights of `checkpoint` (a name in MODEL_DIR/checkpoints or a
    path; None: the latest)."""
    config = dict(run_dir.read_run_info(model_dir)["discriminator_config"])
    config.pop("dtype", None)
    discriminator = discriminator_lib.Discriminator.from_config(config)
    size, dim = config["image_size"], config["embedding_dim"]
    discriminator(tf.zeros([1, size, size, 3]), tf.zeros([1, dim]), training=False)
    generator_loading.restore(run_dir.resolve_checkpoint(model_dir, checkpoint),
                              discriminator=generator_loading.weights_by_path(discriminator))
    return discriminator


def _scores(discriminator, images, sentences) -> tuple[np.ndarray, np.ndarray]:
    """(logits [B], cos(x_pool, e) [B])."""
    outputs = discriminator(images, sentences, training=False)
    cosine = tf.reduce_sum(tf.math.l2_normalize(outputs.global_features, -1)
                           * tf.math.l2_normalize(outputs.sentence_projection, -1), -1)
    return outputs.logits.numpy(), cosine.numpy()


def probe(model_dir: str, checkpoint: str, data_dir: str, num_samples: int,
          batch_size: int = 50) -> dict[str, dict[str, float]]:
    """{case: {"logit": mean, "prefers_true_by_logit": p, "prefers_true_by_cosine": p}}."""
    info = schema.read_dataset_info(data_dir)
    seed = int(info.extra["seed"])
    discriminator = load_discriminator(model_dir, checkpoint)
    size = discriminator.image_size
    scores = {"true image": [], "another scene's caption": [],
              **{name: [] for name in COUNTERFACTUALS}}
    mirrored, mirror_subset = [], []
    for batch in input_pipeline.ordered_examples(
            data_dir, "val", image_size=size, batch_size=batch_size, num_samples=num_samples,
            max_tokens=info.max_tokens, embedding_dim=info.embedding_dim, with_objects=True):
        sentences = batch["sentence"]
        scores["true image"].append(_scores(discriminator, batch["image"], sentences))
        columns = batch[schema.OBJECT_PREFIX + "col"].numpy()  # [B, K], -1 padding
        mirror_subset.append((batch["states_position"].numpy() > 0)
                             & np.any((columns >= 0) & (columns != CENTRE_COLUMN), axis=1))
        mirrored.append(_scores(discriminator, batch["image"][:, :, ::-1], sentences))
        scores["another scene's caption"].append(
            _scores(discriminator, batch["image"], tf.roll(sentences, 1, axis=0)))
        indices = batch["index"].numpy() + synthetic_scenes.SPLIT_INDEX_OFFSET["val"]
        for name, shape_map in COUNTERFACTUALS.items():
            images = np.stack([synthetic_scenes.make_scene(seed, int(i), size,
                                                           shape_map=shape_map).image
                               for i in indices]).astype(np.float32) / 255.0
            scores[name].append(_scores(discriminator, images, sentences))
    logits = {k: np.concatenate([s[0] for s in v]) for k, v in scores.items()}
    cosines = {k: np.concatenate([s[1] for s in v]) for k, v in scores.items()}
    table = {}
    for name in scores:
        table[name] = {"logit": float(logits[name].mean())}
        if name != "true image":
            table[name]["prefers_true_by_logit"] = float(
                np.mean(logits["true image"] > logits[name]))
            table[name]["prefers_true_by_cosine"] = float(
                np.mean(cosines["true image"] > cosines[name]))
    # The mirror row covers only the scenes it contradicts (its mean logit too).
    subset = np.concatenate(mirror_subset)
    mirror_logits = np.concatenate([s[0] for s in mirrored])[subset]
    mirror_cosines = np.concatenate([s[1] for s in mirrored])[subset]
    table[MIRROR_CASE] = {
        "logit": float(mirror_logits.mean()),
        "prefers_true_by_logit": float(np.mean(logits["true image"][subset] > mirror_logits)),
        "prefers_true_by_cosine": float(np.mean(cosines["true image"][subset] > mirror_cosines))}
    return table


def markdown(table: dict[str, dict[str, float]]) -> str:
    lines = ["| D's input | mean logit | D prefers the true image (logit) | (L_sent cosine) |",
             "|---|---:|---:|---:|"]
    for name, row in table.items():
        by_logit = row.get("prefers_true_by_logit")
        by_cosine = row.get("prefers_true_by_cosine")
        lines.append(f"| {name} | {row['logit']:.3f} | "
                     f"{'' if by_logit is None else f'{by_logit:.3f}'} | "
                     f"{'' if by_cosine is None else f'{by_cosine:.3f}'} |")
    return "\n".join(lines)


def run_parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the probes' --model_dir and --checkpoint."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--model_dir", required=True, help="training run directory")
    parser.add_argument("--checkpoint", default=None,
                        help="checkpoint name, e.g. ckpt-1500 (default: the latest)")
    return parser


def main() -> None:
    parser = run_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--data_dir", required=True,
                        help="the synthetic dataset the run trained on (its val split)")
    parser.add_argument("--num_samples", type=int, default=300, help="val scenes to probe")
    args = parser.parse_args()
    print(markdown(probe(args.model_dir, args.checkpoint, args.data_dir, args.num_samples)))


if __name__ == "__main__":
    main()
