"""Object accuracy on the synthetic set: a semantic-object-accuracy (SOA) analogue.

The domain evaluator (`xmcgan_tf.evaluation.domain_evaluator`) detects, per cell of the G×G
grid, whether an object is there and its shape, colour and size. An object the caption names is
*recalled* when the evaluator finds an object with the attributes the caption states:
  - shape and colour always;
  - the grid cell (row, col) when the caption states absolute positions (`states_position`),
    otherwise any cell will do;
  - the size when the caption states sizes (`states_size`).
Each synthetic caption names every object of its scene. An image's score is the fraction of its
objects recalled; the image-averaged accuracy is the mean over images and the class-averaged
accuracy the mean over classes (class = the image label, the (shape, colour) class of the first
object) of the per-class image mean, as SOA-I and SOA-C average. Hallucinated extra objects are
not penalised (recall, as in SOA).

`shape_confusion` takes the shapes apart: for each named object, the shape the evaluator sees
in a cell of the object's colour (position and size aside), so that a model which draws the
right colours in the right places but blobs for shapes shows where its shapes go wrong.
`place_recall` takes the places apart the same way: for each object whose caption states where
it is, whether the evaluator finds an object of its colour in the stated cell (shape and size
aside), against the chance of a model that draws that many objects of the colour in cells
chosen without regard to the caption.

Legend: N images, K objects per image (padded with -1), G² grid cells, S shapes.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping

import numpy as np

# Object fields read from the records (schema.OBJECT_FIELDS order) and predicted per cell.
OBJECT_FIELDS = ("shape", "color", "size", "row", "col")
PREDICTED_FIELDS = ("shape", "color", "size")
NO_OBJECT = 0  # predicted shape id of an empty cell; shape s is predicted as s + 1


@dataclasses.dataclass(frozen=True)
class ObjectAccuracy:
    """Object recall of one image set.

    Attributes:
      image_averaged: mean over images of the fraction of named objects recalled.
      class_averaged: mean over image labels of the per-label image_averaged value (NaN when no
        image has a label >= 0).
      object_averaged: fraction of all named objects recalled (with every attribute stated it
        is the domain evaluator's per-object accuracy).
      num_images: N.
      num_objects: named objects in total.
      num_classes: labels the class average runs over.
    """

    image_averaged: float
    class_averaged: float
    object_averaged: float
    num_images: int
    num_objects: int
    num_classes: int


def _int_matrix(name: str, values: np.ndarray, rows: int | None = None) -> np.ndarray:
    values = np.asarray(values)
    if values.ndim != 2 or not np.issubdtype(values.dtype, np.integer):
        raise ValueError(f"{name} must be an integer [N, ...] matrix; got {values.dtype} "
                         f"{values.shape}")
    if rows is not None and values.shape[0] != rows:
        raise ValueError(f"{name} has {values.shape[0]} rows, expected {rows}")
    return values


def object_recall(predictions: Mapping[str, np.ndarray], objects: Mapping[str, np.ndarray],
                  states_position: np.ndarray, states_size: np.ndarray,
                  grid: int) -> np.ndarray:
    """Per-object recall flags.

    Args:
      predictions: "shape" [N, G²] int (0 = empty, s + 1 = shape s), "color" [N, G²] int,
        "size" [N, G²] int; cells in row-major order (cell = row * G + col).
      objects: "shape", "color", "size", "row", "col" [N, K] int ground truth, -1 padding.
      states_position: [N] int/bool, 1 where the image's caption states absolute positions.
      states_size: [N] int/bool, 1 where the caption states sizes.
      grid: G.

    Returns:
      [N, K] float32: 1 recalled, 0 missed, NaN for padding.
    """
    missing = [f for f in OBJECT_FIELDS if f not in objects]
    missing += [f"prediction {f}" for f in PREDICTED_FIELDS if f not in predictions]
    if missing:
        raise ValueError(f"object accuracy lacks the fields {missing}")
    pred = {f: _int_matrix(f"predictions[{f!r}]", predictions[f]) for f in PREDICTED_FIELDS}
    count, cells = pred["shape"].shape
    if cells != grid * grid:
        raise ValueError(f"predictions have {cells} cells, but a {grid}x{grid} grid has "
                         f"{grid * grid}")
    gt = {f: _int_matrix(f"objects[{f!r}]", objects[f], count) for f in OBJECT_FIELDS}
    by_position = np.asarray(states_position).reshape(count).astype(bool)[:, None]  # [N, 1]
    by_size = np.asarray(states_size).reshape(count).astype(bool)[:, None]  # [N, 1]
    valid = gt["shape"] >= 0  # [N, K]
    # match[n, k, c]: cell c of image n shows object k's shape and colour (and size if stated).
    match = ((pred["shape"][:, None, :] == gt["shape"][:, :, None] + 1)
             & (pred["color"][:, None, :] == gt["color"][:, :, None]))
    match &= ~by_size[:, :, None] | (pred["size"][:, None, :] == gt["size"][:, :, None])
    cell = np.clip(gt["row"], 0, grid - 1) * grid + np.clip(gt["col"], 0, grid - 1)  # [N, K]
    at_cell = np.take_along_axis(match, cell[:, :, None], axis=2)[:, :, 0]  # [N, K]
    recalled = np.where(by_position, at_cell, match.any(axis=2))
    return np.where(valid, recalled.astype(np.float32), np.float32(np.nan))


def shape_confusion(predictions: Mapping[str, np.ndarray], objects: Mapping[str, np.ndarray],
                    num_shapes: int) -> np.ndarray:
    """Counts of (named shape, shape seen in a cell of the object's colour).

    For each named object the cells the evaluator finds non-empty with the object's colour are
    looked at: if one shows the named shape, the object counts on the diagonal; otherwise the
    first such cell (row-major) gives the shape seen; with no such cell, column 0 ("no object of
    that colour"). Position and size are not asked for.

    Args:
      predictions: "shape" [N, G²] int (0 = empty, s + 1 = shape s) and "color" [N, G²] int.
      objects: "shape" and "color" [N, K] int ground truth, -1 padding.
      num_shapes: S.

    Returns:
      [S, S + 1] int64: row s = named shape s; column 0 = no object of its colour, column
      t + 1 = seen as shape t.
    """
    pred_shape = _int_matrix("predictions['shape']", predictions["shape"])
    pred_color = _int_matrix("predictions['color']", predictions["color"], pred_shape.shape[0])
    shapes = _int_matrix("objects['shape']", objects["shape"], pred_shape.shape[0])
    colors = _int_matrix("objects['color']", objects["color"], pred_shape.shape[0])
    if shapes.max(initial=-1) >= num_shapes or pred_shape.max(initial=0) > num_shapes:
        raise ValueError(f"shape ids exceed num_shapes = {num_shapes}")
    counts = np.zeros([num_shapes, num_shapes + 1], np.int64)
    for n, k in zip(*np.nonzero(shapes >= 0)):
        seen = pred_shape[n][(pred_shape[n] != NO_OBJECT) & (pred_color[n] == colors[n, k])]
        if seen.size == 0:
            counts[shapes[n, k], 0] += 1
        elif np.any(seen == shapes[n, k] + 1):
            counts[shapes[n, k], shapes[n, k] + 1] += 1
        else:
            counts[shapes[n, k], seen[0]] += 1
    return counts


@dataclasses.dataclass(frozen=True)
class PlaceRecall:
    """Where the named objects of position-stating captions are drawn.

    Attributes:
      recall: fraction of those objects with an object of their colour in the stated cell.
      chance: the recall of a model that drew the same objects in random cells: the mean over
        those objects of (cells showing an object of their colour) / G².
      colour_drawn: fraction of those objects whose colour is drawn in any cell.
      num_objects: objects counted (named by captions that state positions).
    """

    recall: float
    chance: float
    colour_drawn: float
    num_objects: int


def place_recall(predictions: Mapping[str, np.ndarray], objects: Mapping[str, np.ndarray],
                 states_position: np.ndarray, grid: int) -> PlaceRecall:
    """Place recall of the objects whose captions state positions (module docstring).

    Args:
      predictions: "shape" [N, G²] int (0 = empty) and "color" [N, G²] int, row-major cells.
      objects: "color", "row", "col" [N, K] int ground truth, -1 padding.
      states_position: [N] int/bool, 1 where the image's caption states absolute positions.
      grid: G.

    Returns:
      PlaceRecall (NaN values and num_objects 0 when no caption states a position).
    """
    pred_shape = _int_matrix("predictions['shape']", predictions["shape"])
    count, cells = pred_shape.shape
    if cells != grid * grid:
        raise ValueError(f"predictions have {cells} cells, but a {grid}x{grid} grid has "
                         f"{grid * grid}")
    pred_color = _int_matrix("predictions['color']", predictions["color"], count)
    gt = {f: _int_matrix(f"objects[{f!r}]", objects[f], count) for f in ("color", "row", "col")}
    by_position = np.asarray(states_position).reshape(count).astype(bool)[:, None]  # [N, 1]
    counted = (gt["color"] >= 0) & by_position  # [N, K]
    # coloured[n, k, c]: cell c of image n shows an object of object k's colour.
    coloured = ((pred_shape[:, None, :] != NO_OBJECT)
                & (pred_color[:, None, :] == gt["color"][:, :, None]))
    cell = np.clip(gt["row"], 0, grid - 1) * grid + np.clip(gt["col"], 0, grid - 1)  # [N, K]
    at_cell = np.take_along_axis(coloured, cell[:, :, None], axis=2)[:, :, 0]  # [N, K]
    total = int(counted.sum())
    if total == 0:
        return PlaceRecall(float("nan"), float("nan"), float("nan"), 0)
    return PlaceRecall(recall=float(at_cell[counted].mean()),
                       chance=float((coloured.sum(axis=2) / cells)[counted].mean()),
                       colour_drawn=float(coloured.any(axis=2)[counted].mean()),
                       num_objects=total)


def object_accuracy(predictions: Mapping[str, np.ndarray], objects: Mapping[str, np.ndarray],
                    states_position: np.ndarray, states_size: np.ndarray, labels: np.ndarray,
                    grid: int) -> ObjectAccuracy:
    """Image- and class-averaged object recall (see the module docstring).

    Args:
      predictions, objects, states_position, states_size, grid: as for `object_recall`.
      labels: [N] int image labels (-1 = none; such images count only in the image average).

    Returns:
      ObjectAccuracy.
    """
    recall = object_recall(predictions, objects, states_position, states_size, grid)
    named = np.sum(~np.isnan(recall), axis=1)  # [N]
    if np.any(named == 0):
        raise ValueError(f"{int(np.sum(named == 0))} images name no objects; object accuracy "
                         "needs the synthetic set's objects/* ground truth")
    per_image = np.nansum(recall, axis=1) / named  # [N]
    labels = np.asarray(labels).reshape(len(per_image))
    classes = np.unique(labels[labels >= 0])
    class_averaged = (float(np.mean([per_image[labels == c].mean() for c in classes]))
                      if len(classes) else float("nan"))
    return ObjectAccuracy(image_averaged=float(per_image.mean()), class_averaged=class_averaged,
                          object_averaged=float(np.nansum(recall) / named.sum()),
                          num_images=len(per_image), num_objects=int(named.sum()),
                          num_classes=len(classes))
