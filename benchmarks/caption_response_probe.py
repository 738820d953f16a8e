r"""Does a trained generator change what it draws when one part of the caption changes?

    PYTHONPATH=. .venv/bin/python -m benchmarks.caption_response_probe --model_dir RUN \
        --checkpoint ckpt-1500 --text_encoder_dir demo/text_encoder --output response.png

The EMA generator draws one-object captions "a large <colour> <shape> <place>" for every
combination of 4 colours, the 5 synthetic shapes and 3 places, all with the same z. For each
part of the caption it prints the mean absolute pixel change between two captions that differ in
that part only: a generator that follows a part moves the image when it changes, one deaf to
it leaves the image as it is (0). The grid (`--output`) has one row per (place, colour), the
shapes across.
"""

from __future__ import annotations

import itertools

import numpy as np
import tensorflow as tf
from PIL import Image

from benchmarks import shape_probe
from data_tools import synthetic_scenes
from xmcgan_tf.data import sentence_embedding
from xmcgan_tf.models import generator_loading
from xmcgan_tf.text import encoder as text_encoder_lib

COLOURS = ("red", "blue", "green", "yellow")
SHAPES = synthetic_scenes.SHAPES
PLACES = ("in the top left", "in the bottom right", "in the middle")


def _mean_change(images: np.ndarray, axis: int) -> float:
    """Mean |Δ pixel| over every pair of captions that differ along `axis` of
    images [places, colours, shapes, S, S, 3] only."""
    moved = np.moveaxis(images, axis, 0)
    return float(np.mean([np.abs(moved[i] - moved[j]).mean()
                          for i, j in itertools.combinations(range(len(moved)), 2)]))


def probe(model_dir: str, checkpoint: str | None, text_encoder_dir: str,
          seed: int = 0) -> tuple[dict[str, float], np.ndarray]:
    """({"shape": Δ, "colour": Δ, "place": Δ}, images [places, colours, shapes, S, S, 3])."""
    loaded = generator_loading.load_generators(model_dir, checkpoint)
    info = loaded.run_info
    encoder = text_encoder_lib.TextEncoder(f"{text_encoder_dir}/preprocess",
                                           f"{text_encoder_dir}/encoder",
                                           max_tokens=int(info["max_tokens"]))
    captions = [f"a large {c} {s} {p}" for p in PLACES for c in COLOURS for s in SHAPES]
    words, num_tokens = text_encoder_lib.encode_captions(encoder, captions)
    words, num_tokens = tf.constant(words), tf.constant(num_tokens)
    sentences = sentence_embedding.sentence_embedding(words, num_tokens,
                                                      info["sentence_embedding"])
    mask = sentence_embedding.word_mask(num_tokens, int(info["max_tokens"]))
    z = np.random.default_rng(seed).standard_normal([1, int(info["z_dim"])]).astype(np.float32)
    z = tf.constant(np.repeat(z, len(captions), axis=0))
    images = loaded.generator_ema(z, sentences, words, mask, training=False).numpy()
    images = images.reshape(len(PLACES), len(COLOURS), len(SHAPES), *images.shape[1:])
    return {"shape": _mean_change(images, 2), "colour": _mean_change(images, 1),
            "place": _mean_change(images, 0)}, images


def main() -> None:
    parser = shape_probe.run_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--text_encoder_dir", required=True,
                        help="the offline text encoder the dataset was encoded with")
    parser.add_argument("--output", default=None, help="PNG grid of the generated images")
    args = parser.parse_args()
    changes, images = probe(args.model_dir, args.checkpoint, args.text_encoder_dir)
    print("| caption part changed | mean abs pixel change |\n|---|---:|")
    for part, change in changes.items():
        print(f"| {part} | {change:.4f} |")
    if args.output:
        rows = [np.concatenate(list(images[p, c]), axis=1)
                for p in range(len(PLACES)) for c in range(len(COLOURS))]
        grid = (np.concatenate(rows, axis=0) * 255).clip(0, 255).astype(np.uint8)
        Image.fromarray(grid).save(args.output)


if __name__ == "__main__":
    main()
