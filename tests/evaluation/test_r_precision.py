"""R-precision: perfect judge -> 1, random judge -> 1 / candidates, folds, caption handling."""

import numpy as np
import pytest

from xmcgan_tf.evaluation import r_precision


def _numpy_reference(images, texts, negatives):
    """Independent R@1 for given negatives: cosine via explicit loops."""
    hits = []
    for i in range(len(images)):
        cos = lambda a, b: a @ b / (np.linalg.norm(a) * np.linalg.norm(b))  # noqa: E731
        true = cos(images[i], texts[i])
        hits.append(all(true > cos(images[i], texts[j]) for j in negatives[i]))
    return np.mean(hits)


def test_true_embeddings_give_one():
    emb = np.random.default_rng(0).normal(size=(1000, 32))
    mean, std = r_precision.r_precision(emb, emb * 3.0)  # scale does not matter (cosine)
    assert mean == 1.0 and std == 0.0


def test_random_embeddings_give_one_over_candidates():
    rng = np.random.default_rng(1)
    images, texts = rng.normal(size=(2, 5000, 16))
    mean, std = r_precision.r_precision(images, texts, num_candidates=100, num_folds=10)
    assert abs(mean - 0.01) < 0.005  # 50 ± 7 expected hits out of 5000
    assert std > 0.0
    mean10, _ = r_precision.r_precision(images, texts, num_candidates=10)
    assert abs(mean10 - 0.1) < 0.02


def test_single_fold_matches_loop_reference():
    rng = np.random.default_rng(2)
    base = rng.normal(size=(300, 8))
    images, texts = base + rng.normal(size=base.shape), base + rng.normal(size=base.shape)
    mean, _ = r_precision.r_precision(images, texts, num_candidates=20, num_folds=1, seed=5)
    rng_copy = np.random.default_rng(5)
    negatives = [r_precision._sample_negatives(rng_copy, i, 300, 19, None) for i in range(300)]
    assert mean == pytest.approx(_numpy_reference(images, texts, negatives))
    assert 0.05 < mean < 1.0


def test_deterministic_for_seed():
    rng = np.random.default_rng(3)
    images, texts = rng.normal(size=(2, 500, 8))
    a = r_precision.r_precision(images, texts, seed=7)
    assert a == r_precision.r_precision(images, texts, seed=7)


def test_identical_caption_texts_are_not_negatives():
    rng = np.random.default_rng(4)
    caption_ids = np.arange(1000) % 200
    table = rng.normal(size=(200, 16))
    texts = table[caption_ids]
    captions = [f"caption {c}" for c in caption_ids]
    # Without the texts, an identical caption ties with the true one and counts as a miss.
    mean_blind, _ = r_precision.r_precision(texts, texts, num_candidates=100)
    mean, _ = r_precision.r_precision(texts, texts, num_candidates=100, captions=captions)
    assert mean == 1.0
    assert mean_blind < 0.8


def test_bad_inputs_name_the_problem():
    emb = np.zeros((50, 4)) + 1.0
    with pytest.raises(ValueError, match="99 other captions"):
        r_precision.r_precision(emb, emb)
    with pytest.raises(ValueError, match="one caption per image"):
        r_precision.r_precision(emb, emb[:40], num_candidates=10)
    with pytest.raises(TypeError, match="encode_texts"):
        r_precision.check_judge(object())
