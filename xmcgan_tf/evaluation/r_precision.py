"""R-precision: does a separately trained judge pick the true caption of a generated image?

For each image, the judge scores its true caption and `num_candidates - 1` captions of other
images by the cosine similarity of their embeddings; R@1 is the fraction of images whose true
caption scores strictly highest (ties count as misses). The images are split into folds and
R@1 is reported as mean ± standard deviation over the folds (AttnGAN protocol: 100 candidates).

The judge is any object with
  `encode_images(images [N, S, S, 3] float32 in [0, 1]) -> [N, K]` and
  `encode_texts(words [N, T, D] float32, word_mask [N, T] float32) -> [N, K]`,
for example `xmcgan_tf.networks.dual_encoder.DualEncoder`. It must be trained separately from
the generator being judged.

Legend: N images (one caption each), K joint embedding dimension.
"""

from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np
import tensorflow as tf


class Judge(Protocol):
    """The dual-encoder interface R-precision needs."""

    def encode_images(self, images: tf.Tensor) -> tf.Tensor:
        """[N, S, S, 3] float32 in [0, 1] -> [N, K] float32 image embeddings."""

    def encode_texts(self, words: tf.Tensor, word_mask: tf.Tensor) -> tf.Tensor:
        """([N, T, D] float32, [N, T] float32) -> [N, K] float32 caption embeddings."""


def check_judge(judge: object) -> None:
    """Raises TypeError unless `judge` has callable `encode_images` and `encode_texts`."""
    missing = [name for name in ("encode_images", "encode_texts")
               if not callable(getattr(judge, name, None))]
    if missing:
        raise TypeError(f"an R-precision judge needs the methods encode_images(images) and "
                        f"encode_texts(words, word_mask); {type(judge).__name__} lacks {missing}")


def _normalise(name: str, values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, np.float64)
    if values.ndim != 2:
        raise ValueError(f"{name} must be a [N, K] matrix; got shape {values.shape}")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return values / np.maximum(np.linalg.norm(values, axis=1, keepdims=True), 1e-12)


def _sample_negatives(rng: np.random.Generator, index: int, count: int, num_negatives: int,
                      caption_ids: np.ndarray | None) -> np.ndarray:
    """`num_negatives` distinct indices != index (and of a different caption text if given)."""
    chosen: list[int] = []
    seen = {index}
    while len(chosen) < num_negatives:
        for j in rng.integers(0, count, size=2 * num_negatives + 8):
            j = int(j)
            if j in seen or (caption_ids is not None and caption_ids[j] == caption_ids[index]):
                continue
            seen.add(j)
            chosen.append(j)
            if len(chosen) == num_negatives:
                break
    return np.asarray(chosen)


def r_precision(image_embeddings: np.ndarray, text_embeddings: np.ndarray, *,
                num_candidates: int = 100, num_folds: int = 10, seed: int = 0,
                captions: Sequence[str] | None = None) -> tuple[float, float]:
    """R@1 over `num_candidates` captions, mean ± std over folds.

    Args:
      image_embeddings: [N, K] judge embeddings of the (generated or real) images.
      text_embeddings: [N, K] judge embeddings of their true captions (row i belongs to image i).
      num_candidates: candidates per image: the true caption + num_candidates - 1 others.
      num_folds: consecutive folds of the N images; each needs at least one image.
      seed: seed of the negative sampling; the result is a pure function of the inputs and seed.
      captions: [N] caption texts. When given, negatives are drawn only from images whose
        caption text differs from the true one (templated captions repeat verbatim, and an
        identical caption is not a wrong one).

    Returns:
      (mean, standard deviation) of R@1 over the folds.
    """
    images = _normalise("image_embeddings", image_embeddings)
    texts = _normalise("text_embeddings", text_embeddings)
    if images.shape != texts.shape:
        raise ValueError(f"image embeddings {images.shape} and text embeddings {texts.shape} "
                         "must both be [N, K] with one caption per image")
    count = images.shape[0]
    if num_candidates < 2:
        raise ValueError(f"num_candidates must be >= 2, got {num_candidates}")
    if not 1 <= num_folds <= count:
        raise ValueError(f"num_folds must be in [1, {count}] for {count} images; got {num_folds}")
    caption_ids = None
    if captions is not None:
        if len(captions) != count:
            raise ValueError(f"{len(captions)} captions for {count} images")
        _, caption_ids = np.unique(np.asarray(captions, dtype=object).astype(str),
                                   return_inverse=True)
        eligible = count - np.bincount(caption_ids)[caption_ids]
    else:
        eligible = np.full(count, count - 1)
    num_negatives = num_candidates - 1
    if eligible.min() < num_negatives:
        raise ValueError(
            f"R-precision with {num_candidates} candidates needs {num_negatives} other captions "
            f"per image, but some image has only {int(eligible.min())} (N = {count}"
            + (", distinct caption texts only" if captions is not None else "") + ")")
    rng = np.random.default_rng(seed)
    negatives = np.stack([_sample_negatives(rng, i, count, num_negatives, caption_ids)
                          for i in range(count)])  # [N, C-1]
    true_scores = np.sum(images * texts, axis=1)  # [N]
    hits = np.empty(count, bool)
    for lo in range(0, count, 1024):
        hi = min(lo + 1024, count)
        negative_scores = np.einsum("nk,nck->nc", images[lo:hi], texts[negatives[lo:hi]])
        hits[lo:hi] = true_scores[lo:hi] > negative_scores.max(axis=1)
    folds = [fold.mean() for fold in np.array_split(hits, num_folds)]
    return float(np.mean(folds)), float(np.std(folds))
