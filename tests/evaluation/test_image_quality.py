"""FID / KID / IS against independent numpy/scipy computations on fixed activations."""

import numpy as np
import pytest
import scipy.linalg

from xmcgan_tf.evaluation import image_quality


def _scipy_fid(a: np.ndarray, b: np.ndarray) -> float:
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(cov_a @ cov_b).real
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a + cov_b - 2.0 * covmean))


def _numpy_kid(a: np.ndarray, b: np.ndarray) -> float:
    """Unbiased MMD² with k(x, y) = (x·y / F + 1)³ (one block)."""
    dim = a.shape[1]
    k_aa = (a @ a.T / dim + 1.0) ** 3
    k_bb = (b @ b.T / dim + 1.0) ** 3
    k_ab = (a @ b.T / dim + 1.0) ** 3
    m, n = len(a), len(b)
    return float((k_aa.sum() - np.trace(k_aa)) / (m * (m - 1))
                 + (k_bb.sum() - np.trace(k_bb)) / (n * (n - 1)) - 2.0 * k_ab.mean())


def _numpy_is(logits: np.ndarray) -> float:
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    q = p.mean(0)
    return float(np.exp(np.mean(np.sum(p * (np.log(p) - np.log(q)), axis=1))))


@pytest.fixture(scope="module")
def activations():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(400, 16))
    fake = rng.normal(size=(300, 16)) @ rng.normal(size=(16, 16)) * 0.5 + 0.3
    return real, fake


def test_fid_matches_scipy(activations):
    real, fake = activations
    expected = _scipy_fid(real, fake)
    assert image_quality.frechet_distance(real, fake) == pytest.approx(expected, rel=1e-6)


def test_fid_of_identical_sets_is_zero(activations):
    real, _ = activations
    assert abs(image_quality.frechet_distance(real, real)) < 1e-6


def test_kid_matches_unbiased_cubic_mmd(activations):
    real, fake = activations
    kid, std = image_quality.kernel_distance(real, fake, max_block_size=1000)
    assert kid == pytest.approx(_numpy_kid(real, fake), rel=1e-6)
    assert np.isnan(std)  # one block: no standard-error estimate


def test_kid_blocks_average_block_estimates(activations):
    real, fake = activations
    kid, std = image_quality.kernel_distance(real, fake, max_block_size=100)  # 4 blocks
    blocks = [_numpy_kid(real[i * 100:(i + 1) * 100], fake[i * 75:(i + 1) * 75])
              for i in range(4)]
    assert kid == pytest.approx(np.mean(blocks), rel=1e-6)
    assert std > 0.0


def test_kid_of_same_distribution_is_near_zero():
    rng = np.random.default_rng(1)
    kid, _ = image_quality.kernel_distance(rng.normal(size=(500, 8)), rng.normal(size=(500, 8)))
    assert abs(kid) < 0.05


def test_is_matches_formula():
    logits = np.random.default_rng(2).normal(size=(200, 10)) * 3.0
    mean, std = image_quality.inception_score(logits)
    assert mean == pytest.approx(_numpy_is(logits), rel=1e-6)
    assert std == 0.0


def test_is_splits_average_split_scores():
    logits = np.random.default_rng(3).normal(size=(100, 5)) * 2.0
    mean, std = image_quality.inception_score(logits, num_splits=4)
    scores = [_numpy_is(logits[i * 25:(i + 1) * 25]) for i in range(4)]
    assert mean == pytest.approx(np.mean(scores), rel=1e-6)
    assert std == pytest.approx(np.std(scores), rel=1e-6)


def test_is_of_one_hot_logits_is_number_of_classes():
    k = 7
    logits = np.eye(k)[np.arange(700) % k] * 50.0
    mean, _ = image_quality.inception_score(logits)
    assert mean == pytest.approx(k, rel=1e-6)
    uniform, _ = image_quality.inception_score(np.zeros((50, k)))
    assert uniform == pytest.approx(1.0)


def test_bad_inputs_name_the_problem(activations):
    real, _ = activations
    with pytest.raises(ValueError, match="different feature networks"):
        image_quality.frechet_distance(real, real[:, :8])
    with pytest.raises(ValueError, match=r"\[N, F\] matrix"):
        image_quality.kernel_distance(real[0], real)
    with pytest.raises(ValueError, match="NaN"):
        image_quality.inception_score(np.full((4, 3), np.nan))
    with pytest.raises(ValueError, match="num_splits"):
        image_quality.inception_score(np.zeros((4, 3)), num_splits=5)
