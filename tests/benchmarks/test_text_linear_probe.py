import numpy as np
import pytest

from benchmarks import text_linear_probe as tlp


def _features(labels: np.ndarray, num_classes: int, signal: float, rng: np.random.Generator):
    """A large part shared by every row plus `signal` × the label's one-hot plus small noise."""
    common = np.full([len(labels), 16], 5.0)
    common[:, :num_classes] += signal * np.eye(num_classes)[labels]
    return common + 0.01 * rng.standard_normal(common.shape)


def test_a_small_difference_on_a_large_common_part_is_read_exactly():
    rng = np.random.default_rng(0)
    train_y, val_y = rng.integers(0, 9, 400), rng.integers(0, 9, 100)
    train_x, val_x = _features(train_y, 9, 0.2, rng), _features(val_y, 9, 0.2, rng)
    # The rows' cosine is above 0.99, and the linear readout still finds every label.
    cosine = train_x[0] @ train_x[1] / np.linalg.norm(train_x[0]) / np.linalg.norm(train_x[1])
    assert cosine > 0.99
    assert tlp.probe_accuracy(train_x, train_y, val_x, val_y, 9, ridge=1.0) == 1.0


def test_features_without_the_label_score_near_chance():
    rng = np.random.default_rng(1)
    train_y, val_y = rng.integers(0, 4, 400), rng.integers(0, 4, 400)
    train_x, val_x = rng.standard_normal([400, 16]), rng.standard_normal([400, 16])
    assert tlp.probe_accuracy(train_x, train_y, val_x, val_y, 4, ridge=1.0) < 0.35


def test_probe_keeps_one_object_scenes_and_captions_that_state_the_attribute():
    rng = np.random.default_rng(2)
    count = 300
    parts = []
    for _ in range(2):
        labels = {name: rng.integers(0, classes, count)
                  for name, (classes, _) in tlp.ATTRIBUTES.items()}
        x = np.concatenate([_features(labels[name], classes, 1.0, rng)
                            for name, (classes, _) in tlp.ATTRIBUTES.items()], axis=1)
        parts.append(dict(x=x, objects=rng.integers(1, 3, count),
                          states_size=rng.integers(0, 2, count),
                          states_position=rng.integers(0, 2, count), **labels))
    train, val = parts
    results = tlp.probe(train, val, ridge=1.0)
    one = val["objects"] == 1
    assert results["shape"][2] == results["colour"][2] == int(one.sum())
    assert results["size"][2] == int((one & (val["states_size"] == 1)).sum())
    assert results["cell"][2] == int((one & (val["states_position"] == 1)).sum())
    for accuracy, majority, _ in results.values():
        assert accuracy == pytest.approx(1.0)
        assert majority < 0.7
