"""Tests of xmcgan_tf.layers.differentiable_augmentation: each transform checked image by image
against a brute-force description of what it must do, and its gradient."""

import numpy as np
import pytest
import tensorflow as tf

from xmcgan_tf.layers import differentiable_augmentation as augmentation_lib

B, S = 6, 16


def _images(seed: int = 0) -> np.ndarray:
    """Distinct values in [0, 1], none equal to the fill value."""
    values = np.random.default_rng(seed).permutation(B * S * S * 3).astype(np.float32)
    values = (values + 1.0) / (values.size + 2.0)
    values[np.isclose(values, augmentation_lib.FILL_VALUE)] = 0.01
    return values.reshape(B, S, S, 3)


def _shifted(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """The image moved down by dy and right by dx, uncovered pixels at the fill value."""
    out = np.full_like(image, augmentation_lib.FILL_VALUE)
    for i in range(S):
        for j in range(S):
            if 0 <= i - dy < S and 0 <= j - dx < S:
                out[i, j] = image[i - dy, j - dx]
    return out


def test_translation_shifts_each_image_within_the_ratio():
    images = _images()
    layer = augmentation_lib.DifferentiableAugmentation(["translation"], translation_ratio=0.25,
                                                        seed=3)
    out = layer(tf.constant(images)).numpy()
    limit = 4  # 0.25 · 16
    shifts = []
    for n in range(B):
        matches = [(dy, dx) for dy in range(-limit, limit + 1) for dx in range(-limit, limit + 1)
                   if np.array_equal(out[n], _shifted(images[n], dy, dx))]
        assert len(matches) == 1, n
        shifts.append(matches[0])
    assert len(set(shifts)) > 1  # drawn per image


def test_cutout_erases_one_square_per_image():
    images = _images(1)
    layer = augmentation_lib.DifferentiableAugmentation(["cutout"], cutout_ratio=0.5, seed=4)
    out = layer(tf.constant(images)).numpy()
    side = 8
    for n in range(B):
        changed = np.any(out[n] != images[n], axis=-1)  # [S, S]
        np.testing.assert_array_equal(out[n][changed], augmentation_lib.FILL_VALUE)
        rows, cols = np.nonzero(changed.any(1))[0], np.nonzero(changed.any(0))[0]
        # One axis-aligned block: every pixel of its bounding box is erased.
        assert changed[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()
        assert changed.sum() == len(rows) * len(cols)
        # Side `side`, clipped only where the block touches the border.
        for lines in (rows, cols):
            assert len(lines) == side or lines.min() == 0 or lines.max() == S - 1
            assert side // 2 <= len(lines) <= side


def test_gradient_reaches_exactly_the_pixels_that_stay_visible():
    images = tf.constant(_images(2))
    layer = augmentation_lib.DifferentiableAugmentation(translation_ratio=0.25, cutout_ratio=0.5,
                                                        seed=5)
    with tf.GradientTape() as tape:
        tape.watch(images)
        out = layer(images)
        total = tf.reduce_sum(out)
    gradient = tape.gradient(total, images).numpy()
    visible = np.isin(images.numpy(), out.numpy())
    np.testing.assert_array_equal(gradient, visible.astype(np.float32))
    assert 0 < visible.mean() < 1


def test_zero_ratios_leave_the_images_alone():
    images = _images(3)
    layer = augmentation_lib.DifferentiableAugmentation(translation_ratio=0.0, cutout_ratio=0.0)
    np.testing.assert_array_equal(layer(tf.constant(images)).numpy(), images)


@pytest.mark.parametrize("kwargs, message", [
    (dict(policies=["color"]), "unknown policies"),
    (dict(translation_ratio=1.0), "translation_ratio"),
    (dict(cutout_ratio=-0.1), "cutout_ratio"),
])
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        augmentation_lib.DifferentiableAugmentation(**kwargs)
