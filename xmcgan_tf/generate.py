r"""Caption strings -> PNG grid, in-process, from an exported model.

    python -m xmcgan_tf.generate --export_dir=EXPORT_DIR [--version=N] [--seeds=0,1,2,3] \
        --output=out.png "a small red circle above a blue square"

Loads the newest version of EXPORT_DIR (or --version) and runs its `serve_captions_seeded`
signature once per (caption, seed); the grid has one row per caption and one column per seed.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import tensorflow as tf
from absl import app
from absl import flags

from xmcgan_tf import cli
from xmcgan_tf.export import serving_module
from xmcgan_tf.serving import client


def generate(model: serving_module.LoadedExport, captions: Sequence[str],
             seeds: Sequence[int]) -> np.ndarray:
    """Images of every caption under every seed.

    Args:
      model: a loaded export (`serving_module.load`).
      captions: N caption strings, none empty.
      seeds: K int seeds.

    Returns:
      [N, K, S, S, 3] uint8.
    """
    if not captions or not seeds:
        raise ValueError(f"need at least one caption and one seed, got {len(captions)} and "
                         f"{len(seeds)}")
    empty = [i for i, c in enumerate(captions) if not c.strip()]
    if empty:
        raise ValueError(f"captions {empty} are empty")
    flat_captions, flat_seeds = client.expand(captions, seeds)
    fn = model.model.signatures[serving_module.SERVE_CAPTIONS_SEEDED]
    images = fn(captions=tf.constant(flat_captions, tf.string),
                seed=tf.constant(flat_seeds, tf.int64))[serving_module.IMAGES].numpy()
    return images.reshape((len(captions), len(seeds)) + images.shape[1:])


FLAGS = flags.FLAGS


def _define_flags() -> None:
    """Command-line flags; defined only when the module runs as a program."""
    flags.DEFINE_string("export_dir", None, "Export base directory holding <version>/ SavedModels.")
    flags.DEFINE_integer("version", None, "Version to load (default: the newest).")
    flags.DEFINE_string("seeds", "0,1,2,3", "Comma-separated seeds: one grid column each.")
    flags.DEFINE_string("output", "generated.png", "PNG grid to write.")


def main(argv: Sequence[str]) -> None:
    captions = list(argv[1:])
    if not captions:
        raise app.UsageError(
            'give one or more captions, e.g. "a small red circle above a blue square"')
    seeds = client.parse_seeds(FLAGS.seeds)
    if seeds is None:
        raise app.UsageError("--seeds must name at least one seed")
    with cli.exit_on(FileNotFoundError, ValueError):
        model = serving_module.load(FLAGS.export_dir, FLAGS.version)
        images = generate(model, captions, seeds)
        client.write_png(FLAGS.output, client.captioned_grid(images, captions, seeds))
    print(f"wrote {FLAGS.output}: version {model.version}, {len(captions)} caption(s) x "
          f"{len(seeds)} seed(s), {images.shape[2]} px")


def entry_point() -> None:
    """The `xmcgan-generate` console script (and `python -m xmcgan_tf.generate`)."""
    cli.run(main, _define_flags, required=("export_dir",))


if __name__ == "__main__":
    entry_point()
