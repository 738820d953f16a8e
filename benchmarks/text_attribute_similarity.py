r"""How far apart does the text encoder put captions that differ in one attribute?

    PYTHONPATH=. .venv/bin/python -m benchmarks.text_attribute_similarity \
        --text_encoder_dir demo/text_encoder

Captions "a <size> <colour> <shape> <place>" are encoded for every combination of 2 sizes,
4 colours, 5 shapes and 4 places (all four places have the same number of wordpieces, so the
tokens of two captions line up). For each attribute, over every pair of captions that differ in
that attribute only, the script prints the mean cosine similarity of
  - the sentence embeddings (`--sentence_embedding`, the training default "official"), and
  - the changed word: the lowest cosine among the aligned token embeddings of the pair.
Everything G and D learn about a caption comes through these vectors: an attribute whose
captions have a cosine near 1 is one the networks must learn to amplify from a small difference,
and one that L_word's cosine between words and image regions hardly sees.
"""

from __future__ import annotations

import itertools
from typing import Sequence

import numpy as np
import tensorflow as tf
from absl import app
from absl import flags

from data_tools import synthetic_scenes
from xmcgan_tf.data import sentence_embedding
from xmcgan_tf.text import encoder as text_encoder_lib

SIZES = ("small", "large")
COLOURS = ("red", "blue", "green", "yellow")
SHAPES = synthetic_scenes.SHAPES
PLACES = ("in the top left", "in the top right", "in the bottom left", "in the bottom right")
ATTRIBUTES = ("size", "colour", "shape", "place")

_TEXT_ENCODER_DIR = flags.DEFINE_string("text_encoder_dir", None, "Directory with the text "
                                        "encoder's preprocess/ and encoder/ modules.")
_MAX_TOKENS = flags.DEFINE_integer("max_tokens", 24, "Tokens per caption (T).")
_SENTENCE = flags.DEFINE_enum("sentence_embedding", sentence_embedding.OFFICIAL,
                              sentence_embedding.METHODS, "Sentence vector of a caption.")


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity along the last axis."""
    return np.sum(a * b, -1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def similarities(words: np.ndarray, sentences: np.ndarray, num_tokens: np.ndarray
                 ) -> dict[str, tuple[float, float]]:
    """{attribute: (mean sentence cosine, mean changed-word cosine)} over one-attribute pairs.

    Args:
      words: [N, T, D] token embeddings of the captions in `captions()` order.
      sentences: [N, D] sentence embeddings.
      num_tokens: [N] tokens per caption.

    Raises:
      ValueError: two captions of a pair have different token counts.
    """
    grid = np.arange(len(words)).reshape(len(SIZES), len(COLOURS), len(SHAPES), len(PLACES))
    result = {}
    for axis, attribute in enumerate(ATTRIBUTES):
        moved = np.moveaxis(grid, axis, 0).reshape(grid.shape[axis], -1)  # [values, others]
        sentence_cos, word_cos = [], []
        for i, j in itertools.combinations(range(len(moved)), 2):
            for a, b in zip(moved[i], moved[j], strict=True):
                if num_tokens[a] != num_tokens[b]:
                    raise ValueError(f"captions {a} and {b} have {num_tokens[a]} and "
                                     f"{num_tokens[b]} tokens; their tokens do not line up")
                sentence_cos.append(_cosine(sentences[a], sentences[b]))
                count = int(num_tokens[a])
                word_cos.append(np.min(_cosine(words[a, :count], words[b, :count])))
        result[attribute] = (float(np.mean(sentence_cos)), float(np.mean(word_cos)))
    return result


def captions() -> list[str]:
    """Every "a <size> <colour> <shape> <place>" caption, sizes outermost, places innermost."""
    return [f"a {z} {c} {s} {p}" for z in SIZES for c in COLOURS for s in SHAPES for p in PLACES]


def main(argv: Sequence[str]) -> None:
    del argv
    if not _TEXT_ENCODER_DIR.value:
        raise app.UsageError("--text_encoder_dir is required")
    encoder = text_encoder_lib.TextEncoder(f"{_TEXT_ENCODER_DIR.value}/preprocess",
                                           f"{_TEXT_ENCODER_DIR.value}/encoder",
                                           max_tokens=_MAX_TOKENS.value)
    words, num_tokens = text_encoder_lib.encode_captions(encoder, captions())
    sentences = sentence_embedding.sentence_embedding(
        tf.constant(words), tf.constant(num_tokens), _SENTENCE.value).numpy()
    print(f"| captions differing in | sentence cosine ({_SENTENCE.value}) | changed-word cosine |")
    print("|---|---:|---:|")
    for attribute, (sentence_cos, word_cos) in similarities(words, sentences,
                                                            num_tokens).items():
        print(f"| {attribute} | {sentence_cos:.3f} | {word_cos:.3f} |")


if __name__ == "__main__":
    app.run(main)
