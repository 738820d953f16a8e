"""FID, KID and IS from cached classifier outputs, computed by TF-GAN's eval functions.

Legend: N images, F feature dimension of the feature network, C classes of its logits.

The feature network (TF-GAN Inception or the synthetic-set domain evaluator, see
`xmcgan_tf.evaluation.feature_extractors`) is run once per image set; these functions take its
cached outputs, so the real-image side is computed once per dataset and reused
(`xmcgan_tf.evaluation.real_statistics`). Values from different feature networks measure
different things and are never compared; the registry names each number's protocol.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from xmcgan_tf.evaluation import tfgan_compat


def _activations(name: str, values: np.ndarray | tf.Tensor, min_rows: int) -> tf.Tensor:
    """Validates a [N, F] activation matrix and returns it as a float64 tf.Tensor."""
    values = np.asarray(values)
    if values.ndim != 2:
        raise ValueError(f"{name} must be a [N, F] matrix; got shape {values.shape}")
    if values.shape[0] < min_rows:
        raise ValueError(f"{name} has {values.shape[0]} rows; at least {min_rows} are needed")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return tf.constant(values, tf.float64)


def _check_same_width(real: tf.Tensor, fake: tf.Tensor) -> None:
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"real activations have {real.shape[1]} features but generated ones "
                         f"have {fake.shape[1]}: they come from different feature networks")


def frechet_distance(real_activations: np.ndarray, fake_activations: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two activation sets (FID).

        FID = ‖μ_r − μ_g‖² + Tr(Σ_r + Σ_g − 2 (Σ_r Σ_g)^½)

    with unbiased covariances (Heusel et al. 2017, https://arxiv.org/abs/1706.08500), via
    `tfgan.eval.frechet_classifier_distance_from_activations` in float64.

    Args:
      real_activations: [N_r, F] float features of real images, N_r >= 2.
      fake_activations: [N_g, F] float features of generated images, N_g >= 2.

    Returns:
      FID as a Python float (biased for small N: compare only at equal N).
    """
    real = _activations("real_activations", real_activations, 2)
    fake = _activations("fake_activations", fake_activations, 2)
    _check_same_width(real, fake)
    return float(tfgan_compat.frechet_classifier_distance_from_activations(real, fake))


def kernel_distance(real_activations: np.ndarray, fake_activations: np.ndarray,
                    max_block_size: int = 1024) -> tuple[float, float]:
    """Kernel Inception Distance: unbiased MMD² with the cubic polynomial kernel (KID).

        k(x, y) = (xᵀy / F + 1)³
        KID = E[k(x, x')] + E[k(y, y')] − 2 E[k(x, y)]

    estimated without the diagonal terms, averaged over blocks of at most `max_block_size`
    samples (Bińkowski et al. 2018, https://arxiv.org/abs/1801.01401), via
    `tfgan.eval.kernel_classifier_distance_and_std_from_activations` in float64.

    Args:
      real_activations: [N_r, F] float features of real images (in random order).
      fake_activations: [N_g, F] float features of generated images (in random order).
      max_block_size: largest block; more blocks give a better standard-error estimate.

    Returns:
      (KID, its estimated standard error) as Python floats; the error is NaN when all samples
      fit in one block (no spread to estimate it from).
    """
    real = _activations("real_activations", real_activations, 2)
    fake = _activations("fake_activations", fake_activations, 2)
    _check_same_width(real, fake)
    if max_block_size < 2:
        raise ValueError(f"max_block_size must be >= 2, got {max_block_size}")
    kid, std = tfgan_compat.kernel_classifier_distance_and_std_from_activations(
        real, fake, max_block_size=max_block_size)
    return float(kid), float(std)


def inception_score(logits: np.ndarray, num_splits: int = 1) -> tuple[float, float]:
    """Inception Score exp(E_x KL(p(y|x) ‖ p(y))) of classifier logits (IS).

    Salimans et al. 2016 (https://arxiv.org/abs/1606.03498), via
    `tfgan.eval.classifier_score_from_logits` in float64 on each of `num_splits` consecutive
    splits (the usual protocol uses 10); p(y) is the mean prediction within a split.

    Args:
      logits: [N, C] float unnormalised class scores.
      num_splits: number of splits, each with at least one image.

    Returns:
      (mean, standard deviation) over the splits; the deviation is 0 for one split.
    """
    values = _activations("logits", logits, 1)
    count = int(values.shape[0])
    if not 1 <= num_splits <= count:
        raise ValueError(f"num_splits must be in [1, {count}] for {count} images; "
                         f"got {num_splits}")
    bounds = np.linspace(0, count, num_splits + 1).astype(int)
    scores = [float(tfgan_compat.classifier_score_from_logits(values[lo:hi]))
              for lo, hi in zip(bounds[:-1], bounds[1:])]
    return float(np.mean(scores)), float(np.std(scores))
