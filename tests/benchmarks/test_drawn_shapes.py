import numpy as np
import pytest

from benchmarks import drawn_shapes


def test_shares_count_objects_over_all_cells():
    # Two images of 3 cells: a circle, a triangle and a heart in the first, one heart and two
    # empty cells in the second (0 = empty, s + 1 = shape s).
    cells = np.array([[1, 3, 5], [5, 0, 0]])
    per_image, shares = drawn_shapes.shape_shares(cells, num_shapes=5)
    assert per_image == pytest.approx(2.0)
    np.testing.assert_allclose(shares, [0.25, 0.0, 0.25, 0.0, 0.5])


def test_shares_of_empty_images_are_zero():
    per_image, shares = drawn_shapes.shape_shares(np.zeros([4, 9], np.int64), num_shapes=5)
    assert per_image == 0.0
    np.testing.assert_array_equal(shares, np.zeros(5))


@pytest.mark.parametrize("cells", [np.zeros([0, 9], np.int64), np.zeros([9], np.int64),
                                   np.array([[0, 6]]), np.array([[-1, 0]])])
def test_bad_predictions_are_named(cells):
    with pytest.raises(ValueError, match="cell_shapes"):
        drawn_shapes.shape_shares(cells, num_shapes=5)


def test_markdown_has_one_row_per_image_source():
    table = drawn_shapes.markdown([("real", 1.5, np.full(5, 0.2)),
                                   ("G_ema", 2.0, np.array([0.5, 0.5, 0, 0, 0]))])
    lines = table.split("\n")
    assert lines[0].startswith("| images | objects per image | circle | square | triangle")
    assert lines[2] == "| real | 1.50 | 0.200 | 0.200 | 0.200 | 0.200 | 0.200 |"
    assert lines[3] == "| G_ema | 2.00 | 0.500 | 0.500 | 0.000 | 0.000 | 0.000 |"
