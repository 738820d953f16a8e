import numpy as np
import pytest

from benchmarks import text_attribute_similarity as tas


def _embeddings(place_only: bool):
    """Captions whose vectors depend on the place alone (place_only) or on nothing."""
    captions = tas.captions()
    count = len(captions)
    places = np.array([tas.PLACES.index(next(p for p in tas.PLACES if c.endswith(p)))
                       for c in captions])
    words = np.ones([count, 3, len(tas.PLACES)], np.float32)
    sentences = np.ones([count, len(tas.PLACES)], np.float32)
    if place_only:
        words[:, 2] = np.eye(len(tas.PLACES))[places]  # the place token: one-hot, orthogonal
        sentences = np.eye(len(tas.PLACES), dtype=np.float32)[places]
    return words, sentences, np.full([count], 3)


def test_an_attribute_the_vectors_encode_scores_zero_and_the_others_one():
    assert len(tas.captions()) == 2 * 4 * 5 * 4
    result = tas.similarities(*_embeddings(place_only=True))
    assert result["place"] == pytest.approx((0.0, 0.0), abs=1e-6)
    for attribute in ("size", "colour", "shape"):
        assert result[attribute] == pytest.approx((1.0, 1.0), abs=1e-6)
    blind = tas.similarities(*_embeddings(place_only=False))
    assert all(v == pytest.approx((1.0, 1.0), abs=1e-6) for v in blind.values())


def test_misaligned_tokens_are_refused():
    words, sentences, num_tokens = _embeddings(place_only=True)
    num_tokens[1] = 2  # caption 1 differs from caption 0 in its place only
    with pytest.raises(ValueError, match="do not line up"):
        tas.similarities(words, sentences, num_tokens)
