"""Tests of xmcgan_tf.layers.coordinates."""

import numpy as np
import tensorflow as tf

from xmcgan_tf.layers import coordinates


class CoordinatesTest(tf.test.TestCase):

    def test_grid_holds_row_and_column_of_cell_centres(self):
        grid = coordinates.coordinate_grid(2, 4, 2).numpy()
        self.assertEqual(grid.shape, (2, 4, 2, 2))
        self.assertAllClose(grid[1, :, 0, 0], [-0.75, -0.25, 0.25, 0.75])  # rows, top down
        self.assertAllClose(grid[1, :, 1, 0], [-0.75, -0.25, 0.25, 0.75])
        self.assertAllClose(grid[0, 3, :, 1], [-0.5, 0.5])  # columns, left to right
        self.assertAllEqual(grid[0], grid[1])

    def test_with_coordinates_appends_two_channels(self):
        x = np.random.RandomState(0).randn(3, 4, 4, 5).astype(np.float32)
        out = coordinates.with_coordinates(tf.constant(x)).numpy()
        self.assertEqual(out.shape, (3, 4, 4, 7))
        self.assertAllEqual(out[..., :5], x)
        self.assertAllClose(out[..., 5:], coordinates.coordinate_grid(3, 4, 4))

    def test_keeps_the_input_dtype(self):
        x = tf.zeros([1, 2, 2, 3], tf.bfloat16)
        self.assertEqual(coordinates.with_coordinates(x).dtype, tf.bfloat16)
