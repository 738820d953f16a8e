"""Object accuracy (SOA analogue) on hand-made predictions."""

import numpy as np
import pytest

from xmcgan_tf.evaluation import object_accuracy

G = 3


def _objects(rows):
    """rows: per image a list of (shape, color, size, row, col); padded with -1 to K = 2."""
    out = {f: np.full((len(rows), 2), -1, np.int64) for f in object_accuracy.OBJECT_FIELDS}
    for n, objs in enumerate(rows):
        for k, obj in enumerate(objs):
            for f, v in zip(object_accuracy.OBJECT_FIELDS, obj):
                out[f][n, k] = v
    return out


def _oracle(objects):
    """Predictions that reproduce the ground truth exactly."""
    n = objects["shape"].shape[0]
    pred = {f: np.zeros((n, G * G), np.int64) for f in object_accuracy.PREDICTED_FIELDS}
    for i in range(n):
        for k in range(objects["shape"].shape[1]):
            if objects["shape"][i, k] < 0:
                continue
            cell = objects["row"][i, k] * G + objects["col"][i, k]
            pred["shape"][i, cell] = objects["shape"][i, k] + 1
            pred["color"][i, cell] = objects["color"][i, k]
            pred["size"][i, cell] = objects["size"][i, k]
    return pred


SCENES = [
    [(0, 1, 0, 0, 0)],
    [(2, 3, 1, 1, 2), (4, 5, 0, 2, 0)],
    [(1, 7, 1, 2, 2)],
    [(3, 0, 0, 0, 1), (0, 2, 1, 1, 1)],
]
LABELS = np.array([0 * 8 + 1, 2 * 8 + 3, 1 * 8 + 7, 0 * 8 + 1])


def test_oracle_predictions_recall_everything():
    objects = _objects(SCENES)
    acc = object_accuracy.object_accuracy(_oracle(objects), objects, np.ones(4), np.ones(4),
                                          LABELS, G)
    assert acc.image_averaged == 1.0 and acc.class_averaged == 1.0
    assert acc.num_objects == 6 and acc.num_images == 4 and acc.num_classes == 3


def test_position_and_size_count_only_when_stated():
    objects = _objects(SCENES)
    pred = _oracle(objects)
    # Image 1: move the second object one cell to the right and flip its size.
    pred = {f: v.copy() for f, v in pred.items()}
    for f in ("shape", "color", "size"):
        pred[f][1, 2 * G + 1] = pred[f][1, 2 * G + 0]
        pred[f][1, 2 * G + 0] = 0
    pred["size"][1, 2 * G + 1] = 1
    recall = lambda pos, size: object_accuracy.object_recall(  # noqa: E731
        pred, objects, np.full(4, pos), np.full(4, size), G)[1]
    np.testing.assert_array_equal(recall(0, 0), [1, 1])
    np.testing.assert_array_equal(recall(1, 0), [1, 0])
    np.testing.assert_array_equal(recall(0, 1), [1, 0])
    np.testing.assert_array_equal(recall(1, 1), [1, 0])
    # Padding is NaN.
    assert np.isnan(object_accuracy.object_recall(pred, objects, np.ones(4), np.ones(4), G)[0, 1])


def test_wrong_colour_is_a_miss_and_averages_follow_definitions():
    objects = _objects(SCENES)
    pred = _oracle(objects)
    pred["color"][1, 1 * G + 2] = 0  # image 1, first object: wrong colour
    pred["shape"][3] = 0  # image 3: nothing detected
    acc = object_accuracy.object_accuracy(pred, objects, np.zeros(4), np.zeros(4), LABELS, G)
    per_image = np.array([1.0, 0.5, 1.0, 0.0])
    assert acc.image_averaged == pytest.approx(per_image.mean())
    # classes: 1 -> images 0, 3 (mean 0.5); 19 -> image 1 (0.5); 15 -> image 2 (1.0)
    assert acc.class_averaged == pytest.approx((0.5 + 0.5 + 1.0) / 3)


def test_unlabelled_images_only_count_in_the_image_average():
    objects = _objects(SCENES)
    acc = object_accuracy.object_accuracy(_oracle(objects), objects, np.ones(4), np.ones(4),
                                          np.full(4, -1), G)
    assert acc.image_averaged == 1.0 and np.isnan(acc.class_averaged)


def test_bad_inputs_name_the_problem():
    objects = _objects(SCENES)
    pred = _oracle(objects)
    with pytest.raises(ValueError, match="3x3 grid"):
        object_accuracy.object_recall({f: v[:, :4] for f, v in pred.items()}, objects,
                                      np.ones(4), np.ones(4), G)
    with pytest.raises(ValueError, match="lacks the fields"):
        object_accuracy.object_recall({"shape": pred["shape"]}, objects, np.ones(4),
                                      np.ones(4), G)
    empty = _objects([[], [], [], []])
    with pytest.raises(ValueError, match="name no objects"):
        object_accuracy.object_accuracy(pred, empty, np.ones(4), np.ones(4), LABELS, G)


def test_shape_confusion_counts_by_colour_whatever_the_position():
    # Two images on a 2×2 grid (4 cells), S = 3 shapes; predicted shape s + 1, 0 = empty.
    predictions = {
        # image 0: a red (0) shape-2 blob in cell 3, a blue (1) shape-0 in cell 0.
        # image 1: nothing red; a blue shape-1 in cell 1 and a blue shape-2 in cell 2.
        "shape": np.array([[1, 0, 0, 3], [0, 2, 3, 0]]),
        "color": np.array([[1, 0, 0, 0], [0, 1, 1, 0]]),
    }
    objects = {
        # image 0: a red shape 2 (seen right, wherever) and a blue shape 1 (seen as shape 0).
        # image 1: a red shape 0 (no red object drawn), a blue shape 2 (one of the two blue
        # cells shows it: right), and padding.
        "shape": np.array([[2, 1, -1], [0, 2, -1]]),
        "color": np.array([[0, 1, -1], [0, 1, -1]]),
    }
    counts = object_accuracy.shape_confusion(predictions, objects, num_shapes=3)
    expected = np.zeros([3, 4], np.int64)
    expected[2, 3] = 2  # shape 2 seen as shape 2, twice
    expected[1, 1] = 1  # shape 1 seen as shape 0
    expected[0, 0] = 1  # shape 0: no object of its colour
    np.testing.assert_array_equal(counts, expected)
    with pytest.raises(ValueError, match="num_shapes"):
        object_accuracy.shape_confusion(predictions, objects, num_shapes=2)


def test_place_recall_counts_colour_in_the_stated_cell_against_chance():
    # Three images on a 2×2 grid (4 cells); predicted shape s + 1, 0 = empty.
    predictions = {
        # image 0: red (0) in cell 0 and red in cell 3; image 1: blue (1) in cell 1;
        # image 2: red in cell 2 (its caption states no position: not counted).
        "shape": np.array([[1, 0, 0, 2], [0, 3, 0, 0], [0, 0, 1, 0]]),
        "color": np.array([[0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0]]),
    }
    objects = {
        # image 0: a red object stated at (1, 1) = cell 3 (recalled; 2 red cells: chance 2/4)
        #          and a blue one at (0, 0) (no blue drawn: missed, chance 0).
        # image 1: a blue object stated at (1, 0) = cell 2 (blue drawn in cell 1 only: missed,
        #          chance 1/4).
        # image 2: a red object at (0, 0), caption without positions.
        "color": np.array([[0, 1], [1, -1], [0, -1]]),
        "row": np.array([[1, 0], [1, -1], [0, -1]]),
        "col": np.array([[1, 0], [0, -1], [0, -1]]),
    }
    result = object_accuracy.place_recall(predictions, objects, np.array([1, 1, 0]), grid=2)
    assert result.num_objects == 3
    assert result.recall == pytest.approx(1 / 3)
    assert result.chance == pytest.approx((2 / 4 + 0 + 1 / 4) / 3)
    assert result.colour_drawn == pytest.approx(2 / 3)
    none = object_accuracy.place_recall(predictions, objects, np.zeros(3), grid=2)
    assert none.num_objects == 0 and np.isnan(none.recall)
    with pytest.raises(ValueError, match="a 3x3 grid has 9"):
        object_accuracy.place_recall(predictions, objects, np.ones(3), grid=3)
