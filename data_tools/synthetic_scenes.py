r"""Synthetic captioned scenes: the offline text-to-image benchmark (SPEC §1.3).

Each image shows one or two flat shapes on a muted, slightly noisy background. An object has a
shape (SHAPES), a colour (COLORS, with small jitter), a size (SIZES) and a cell of a 3x3 grid
(row 0..2 top to bottom, col 0..2 left to right, with jitter). Two objects lie in different
cells, their bounding boxes never intersect, and one is left of / right of / above / below the
other. Five captions per image come from varied templates with synonyms and word orders; every
caption names the colour and the shape of every object, some omit the size or the absolute
position (recorded per caption in `states_size` / `states_position`).

Everything is a pure function of (seed, index): the image and captions of index i never depend
on how many images are generated. `image/label` = shape * len(COLORS) + color of the first
object (NUM_CLASSES = 40 classes).

Command line (writes TFRecords, or a COCO-format folder for the COCO converter):

  python -m data_tools.synthetic_scenes --output_dir DIR --num_train 2000 --num_val 500 \
      --image_size 64 --seed 0 --format tfrecord --num_shards 4 \
      --text_preprocessor artifacts/text_encoder/preprocess \
      --text_encoder artifacts/text_encoder/encoder --max_tokens 24
"""

from __future__ import annotations

import collections.abc
import copy
import dataclasses
import functools
import os
import sys
from typing import Callable, Sequence

import numpy as np
import tensorflow as tf
import tqdm
from absl import app
from absl import flags

from data_tools import dataset_writer
from data_tools import image_io
from xmcgan_tf import files
from xmcgan_tf.data import schema

SHAPES = ("circle", "square", "triangle", "star", "heart")
COLORS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "white")
SIZES = ("small", "large")
GRID = 3
ROWS = ("top", "middle", "bottom")
COLS = ("left", "center", "right")
NUM_CLASSES = len(SHAPES) * len(COLORS)
CAPTIONS_PER_IMAGE = 5
MIN_IMAGE_SIZE = 32
# Index offset of each split, so that train and val scenes of one seed never coincide.
SPLIT_INDEX_OFFSET = {"train": 0, "val": 1_000_000_000}
CLASS_NAMES = tuple(f"{s}_{c}" for s in SHAPES for c in COLORS)

# Words a caption may use for each attribute (the first is the canonical name).
SHAPE_WORDS = {
    "circle": ("circle", "disk", "dot", "round shape"),
    "square": ("square", "box", "block"),
    "triangle": ("triangle", "triangular shape", "wedge"),
    "star": ("star", "five-pointed star", "star shape"),
    "heart": ("heart", "heart shape", "love heart"),
}
# Colour words before a noun ("a crimson disk") and after "in" / "that is" ("a disk in gold").
_COLOR_ADJECTIVES = {
    "red": ("red", "crimson", "scarlet"),
    "orange": ("orange", "tangerine"),
    "yellow": ("yellow", "golden", "lemon"),
    "green": ("green", "emerald", "grass-green"),
    "blue": ("blue", "cobalt", "azure"),
    "purple": ("purple", "violet", "plum"),
    "pink": ("pink", "rose", "rosy"),
    "white": ("white", "snowy", "ivory"),
}
_COLOR_PREDICATES = {
    "red": ("red", "crimson", "scarlet"),
    "orange": ("orange", "tangerine"),
    "yellow": ("yellow", "gold"),
    "green": ("green", "emerald"),
    "blue": ("blue", "cobalt", "azure"),
    "purple": ("purple", "violet"),
    "pink": ("pink",),
    "white": ("white", "ivory"),
}
COLOR_WORDS = {c: tuple(dict.fromkeys(_COLOR_ADJECTIVES[c] + _COLOR_PREDICATES[c]))
               for c in COLORS}
_SHORT_SHAPE_WORDS = {s: tuple(w for w in words if w.isalpha())
                      for s, words in SHAPE_WORDS.items()}
SIZE_WORDS = {"small": ("small", "little", "tiny"), "large": ("large", "big", "huge")}

COLOR_RGB = np.array([
    (220, 30, 35), (245, 135, 20), (245, 215, 35), (40, 165, 60),
    (35, 75, 220), (135, 50, 190), (245, 125, 185), (245, 245, 240)], np.float32)
_COLOR_JITTER = 15
# Muted backgrounds (name used in captions, RGB).
_BACKGROUNDS = (("gray", (112, 114, 118)), ("sage", (112, 126, 104)),
                ("beige", (150, 140, 118)), ("brown", (118, 98, 86)),
                ("dark gray", (66, 68, 74)), ("teal", (78, 108, 110)))
_BACKGROUND_JITTER = 10
_NOISE = 6
_GRADIENT = 8.0
# Object radius as a fraction of the image side, per size, times U(1 - x, 1 + x).
_RADIUS = (0.085, 0.14)
_RADIUS_JITTER = 0.08
_POSITION_JITTER = 0.045  # fraction of the image side
_PLACEMENT_TRIES = 12
_SUPERSAMPLE = np.array([0.25, 0.75], np.float32)  # 2x2 subpixel samples (anti-aliasing)
_STATE_SIZE_PROBABILITY = 0.6


@dataclasses.dataclass
class Scene:
    """One generated scene.

    Attributes:
      image: [S, S, 3] uint8 RGB.
      captions: CAPTIONS_PER_IMAGE distinct captions.
      objects: per object {"shape", "color", "size", "row", "col"} ints (indices into SHAPES,
        COLORS, SIZES, ROWS, COLS).
      label: shape * len(COLORS) + color of objects[0].
      states_position: per caption, 1 if it states every object's absolute grid position.
      states_size: per caption, 1 if it states every object's size.
      boxes: per object [x, y, width, height] float pixels of the drawn shape (COCO bbox).
      areas: per object drawn area in pixels (anti-aliased coverage).
      background: index of the background colour.
      counterfactuals: per caption, a false caption differing from it in one attribute
        (`counterfactual_captions`).
    """

    image: np.ndarray
    captions: list[str]
    objects: list[dict]
    label: int
    states_position: list[int]
    states_size: list[int]
    boxes: list[list[float]]
    areas: list[float]
    background: int
    counterfactuals: list[str]


def class_id(shape: int, color: int) -> int:
    """The (shape, color) class: shape * len(COLORS) + color, in [0, NUM_CLASSES)."""
    return int(shape) * len(COLORS) + int(color)


# ---------------------------------------------------------------------------------------------
# Randomness: arrays come from the numpy Generator, scalar choices from a pre-drawn pool of
# uniforms (one numpy call instead of hundreds); both are seeded from (seed, index).


class _Dice:
    """Scalar random choices drawn from a numpy Generator in blocks."""

    _BLOCK = 256

    def __init__(self, rng: np.random.Generator):
        self._rng = rng
        self._values = rng.random(self._BLOCK).tolist()
        self._next = 0

    def uniform(self) -> float:
        """A float in [0, 1)."""
        if self._next == len(self._values):
            self._values = self._rng.random(self._BLOCK).tolist()
            self._next = 0
        self._next += 1
        return self._values[self._next - 1]

    def below(self, n: int) -> int:
        """An int in [0, n)."""
        return min(int(self.uniform() * n), n - 1)

    def pick(self, options: Sequence):
        return options[self.below(len(options))]

    def copy(self) -> "_Dice":
        """A dice that makes the same draws from here on, leaving this one as it is."""
        twin = _Dice.__new__(_Dice)
        twin._rng = np.random.Generator(copy.deepcopy(self._rng.bit_generator))
        twin._values, twin._next = self._values, self._next  # the pool is replaced, not changed
        return twin


# ---------------------------------------------------------------------------------------------
# Drawing.


def _inside(shape: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Whether points (u, v) (object-centred, in radii; v points down) lie in the shape."""
    name = SHAPES[shape]
    if name == "circle":
        return u * u + v * v <= 1.0
    if name == "square":
        return np.maximum(np.abs(u), np.abs(v)) <= 0.82
    if name == "triangle":  # apex up at v = -1, base at v = 0.8
        return (v <= 0.8) & (np.abs(u) <= (v + 1.0) / 1.8)
    if name == "star":  # five points, the first straight up; inner radius 0.45
        inner = 0.45
        sector = 2.0 * np.pi / 5.0
        t = np.mod(np.arctan2(v, u) + np.pi / 2.0, sector)
        t = np.minimum(t, sector - t)  # fold onto [0, pi/5]: outer vertex at 0, inner at pi/5
        edge = inner * np.sin(np.pi / 5.0) / (np.sin(t) - inner * np.sin(t - np.pi / 5.0))
        return u * u + v * v <= edge * edge
    if name == "heart":  # (x^2 + y^2 - 1)^3 <= x^2 y^3, y up
        x = 1.15 * u
        y = -1.15 * v + 0.15
        return (x * x + y * y - 1.0) ** 3 <= x * x * y ** 3
    raise ValueError(f"unknown shape index {shape}")


def _draw(image: np.ndarray, shape: int, rgb: np.ndarray, cx: float, cy: float,
          radius: float) -> tuple[list[float], float]:
    """Blends an anti-aliased shape (2x2 supersampled coverage) into `image` in place.

    Args:
      image: [S, S, 3] int16 RGB.
      shape: index into SHAPES.
      rgb: [3] float32 colour.
      cx, cy: centre in pixels.
      radius: radius in pixels.

    Returns:
      ([x, y, width, height] bounding box in pixels, covered area in pixels).
    """
    size = image.shape[0]
    x0, x1 = max(int(cx - radius) - 1, 0), min(int(cx + radius) + 2, size)
    y0, y1 = max(int(cy - radius) - 1, 0), min(int(cy + radius) + 2, size)
    xs = ((np.arange(x0, x1, dtype=np.float32)[:, None] + _SUPERSAMPLE).reshape(-1) - cx) / radius
    ys = ((np.arange(y0, y1, dtype=np.float32)[:, None] + _SUPERSAMPLE).reshape(-1) - cy) / radius
    inside = _inside(shape, xs[None, :], ys[:, None])  # [2H, 2W]
    coverage = inside.reshape(y1 - y0, 2, x1 - x0, 2).sum(axis=(1, 3)).astype(np.float32)
    coverage *= 0.25  # [H, W] in [0, 1]
    region = image[y0:y1, x0:x1].astype(np.float32)
    region += coverage[..., None] * (rgb - region)
    image[y0:y1, x0:x1] = np.rint(region)
    rows = np.flatnonzero(coverage.any(axis=1))
    cols = np.flatnonzero(coverage.any(axis=0))
    box = [float(x0 + cols[0]), float(y0 + rows[0]),
           float(cols[-1] - cols[0] + 1), float(rows[-1] - rows[0] + 1)]
    return box, float(coverage.sum())


def _place(dice: _Dice, cells: list[int], radii: list[float],
           size: int) -> list[tuple[float, float]]:
    """Object centres (x, y) in pixels: grid cell centres plus jitter, objects inside the image,
    and (for two objects) bounding boxes apart along an axis on which the cells differ."""
    rows, cols = [c // GRID for c in cells], [c % GRID for c in cells]
    jitter = _POSITION_JITTER * size
    for attempt in range(_PLACEMENT_TRIES + 1):
        centres = []
        for row, col, radius in zip(rows, cols, radii):
            dx, dy = ((2.0 * dice.uniform() - 1.0) * jitter, (2.0 * dice.uniform() - 1.0) * jitter)
            if attempt == _PLACEMENT_TRIES:  # fall back to the cell centres, 1/3 side apart
                dx = dy = 0.0
            lo, hi = radius + 1.0, size - radius - 1.0
            centres.append((min(max((col + 0.5) * size / GRID + dx, lo), hi),
                            min(max((row + 0.5) * size / GRID + dy, lo), hi)))
        if len(cells) == 1:
            return centres
        gap = radii[0] + radii[1] + 1.0
        apart_x = cols[0] != cols[1] and abs(centres[0][0] - centres[1][0]) >= gap
        apart_y = rows[0] != rows[1] and abs(centres[0][1] - centres[1][1]) >= gap
        if apart_x or apart_y:
            return centres
    return centres


def _background(rng: np.random.Generator, dice: _Dice, index: int, size: int) -> np.ndarray:
    """[S, S, 3] int16: a muted colour, a faint linear gradient and mild luminance noise."""
    base = [v + dice.below(2 * _BACKGROUND_JITTER + 1) - _BACKGROUND_JITTER
            for v in _BACKGROUNDS[index][1]]
    gx, gy = ((2.0 * dice.uniform() - 1.0) * _GRADIENT, (2.0 * dice.uniform() - 1.0) * _GRADIENT)
    ramp = _ramp(size)
    shade = ramp[None, :] * gx + ramp[:, None] * gy  # [S, S] float32
    shade += rng.integers(-_NOISE, _NOISE + 1, size=(size, size), dtype=np.int16)
    image = np.empty((size, size, 3), np.int16)
    np.rint(shade[..., None] + np.asarray(base, np.float32), out=image, casting="unsafe")
    return image


@functools.lru_cache(maxsize=8)
def _ramp(size: int) -> np.ndarray:
    """[S] float32 from -1 to 1."""
    return np.linspace(-1.0, 1.0, size, dtype=np.float32)


# ---------------------------------------------------------------------------------------------
# Captions.


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _noun_phrase(dice: _Dice, obj: dict, with_size: bool, short: bool = False) -> str:
    """'a large red circle', 'a big disk in crimson', 'a circle that is red', 'a red disk of
    small size' ...; `short` keeps to one-word shape names and the two briefest word orders
    (for captions naming two objects, which must fit in T tokens)."""
    shape = dice.pick((_SHORT_SHAPE_WORDS if short else SHAPE_WORDS)[SHAPES[obj["shape"]]])
    size_name = SIZES[obj["size"]]
    order = dice.below(2 if short else (4 if with_size else 3))
    if order == 0:
        words = f"{dice.pick(_COLOR_ADJECTIVES[COLORS[obj['color']]])} {shape}"
    elif order == 1:
        words = f"{shape} in {dice.pick(_COLOR_PREDICATES[COLORS[obj['color']]])}"
    elif order == 2:
        words = f"{shape} that is {dice.pick(_COLOR_PREDICATES[COLORS[obj['color']]])}"
    else:
        words = (f"{dice.pick(_COLOR_ADJECTIVES[COLORS[obj['color']]])} {shape} "
                 f"of {size_name} size")
    if with_size and order != 3:
        words = f"{dice.pick(SIZE_WORDS[size_name])} {words}"
    return f"{_article(words)} {words}"


def _position_phrase(dice: _Dice, row: int, col: int, short: bool = False) -> str:
    """Absolute grid position: 'in the top left', 'near the upper left corner', 'in the center'.

    `short` keeps to the briefest forms (for captions naming two positions)."""
    r = dice.pick((("top", "upper"), ("middle", "center"), ("bottom", "lower"))[row])
    vertical = ROWS[row]
    c = COLS[col]
    if row != 1 and col != 1:
        forms = (f"in the {r} {c}", f"in the {r} {c} corner", f"near the {r} {c} corner",
                 f"at the {r} {c} of the image", f"in the {r}-{c} part of the picture")
    elif row != 1:
        forms = (f"at the {vertical}", f"in the {r} middle", f"near the {vertical} edge",
                 f"at the {vertical} center of the picture", f"in the {r} part, centered")
    elif col != 1:
        forms = (f"on the {c}", f"on the {c} side", f"in the middle {c}",
                 f"near the {c} edge", f"at the {c} of the image")
    else:
        forms = ("in the center", "in the middle", "right in the middle",
                 "in the center of the image", "in the middle of the picture")
    return dice.pick(forms[:3] if short else forms)


_RELATION_WORDS = {"left": ("to the left of", "left of", "on the left of"),
                   "right": ("to the right of", "right of", "on the right of"),
                   "above": ("above", "over", "higher than"),
                   "below": ("below", "under", "beneath")}


def relations(a: dict, b: dict) -> list[str]:
    """Relations that hold for 'a <relation> b' (a subset of left, right, above, below)."""
    out = []
    if a["col"] < b["col"]:
        out.append("left")
    if a["col"] > b["col"]:
        out.append("right")
    if a["row"] < b["row"]:
        out.append("above")
    if a["row"] > b["row"]:
        out.append("below")
    return out


def _one_object_caption(dice: _Dice, obj: dict, with_size: bool,
                        background: str) -> tuple[str, int]:
    """(caption, states_position) for a single-object scene."""
    template = dice.below(10)
    if template == 9:
        shape = dice.pick(SHAPE_WORDS[SHAPES[obj["shape"]]])
        size = f"{dice.pick(SIZE_WORDS[SIZES[obj['size']]])} " if with_size else ""
        color = dice.pick(_COLOR_PREDICATES[COLORS[obj["color"]]])
        where = _position_phrase(dice, obj["row"], obj["col"])
        return f"the {size}{shape} {where} is {color}", 1
    np_ = _noun_phrase(dice, obj, with_size)
    if template == 5:
        return f"{np_} on {_article(background)} {background} background", 0
    if template == 6:
        return f"{dice.pick(('a picture of', 'an image of', 'a drawing of'))} {np_}", 0
    if template == 7:
        return np_, 0
    where = _position_phrase(dice, obj["row"], obj["col"], short=template == 8)
    if template == 0:
        return f"{np_} {where}", 1
    if template == 1:
        return f"there is {np_} {where}", 1
    if template == 2:
        return f"{where} there is {np_}", 1
    if template == 3:
        return f"{where} is {np_}", 1
    if template == 4:
        return f"the image shows {np_} {where}", 1
    return f"{np_} drawn {where} on {_article(background)} {background} background", 1


def _two_object_caption(dice: _Dice, objects: list[dict], with_size: bool) -> tuple[str, int]:
    """(caption, states_position) for a two-object scene; objects are mentioned in random order."""
    first = dice.below(2)
    a, b = objects[first], objects[1 - first]
    template = dice.below(8)
    short = template in (0, 1, 2, 5, 6, 7)  # templates with a relation or two positions
    np_a = _noun_phrase(dice, a, with_size, short=short)
    np_b = _noun_phrase(dice, b, with_size, short=short)
    if template == 3:
        return f"{np_a} and {np_b}", 0
    if template == 4:
        return f"two shapes: {np_a} and {np_b}", 0
    if template in (6, 7):
        where_a = _position_phrase(dice, a["row"], a["col"], short=True)
        where_b = _position_phrase(dice, b["row"], b["col"], short=True)
        if template == 6:
            return f"{np_a} {where_a} and {np_b} {where_b}", 1
        return f"{where_a} {np_a}, {where_b} {np_b}", 1
    relation = dice.pick(_RELATION_WORDS[dice.pick(relations(a, b))])
    if template == 0:
        return f"{np_a} {relation} {np_b}", 0
    if template == 1:
        return f"there is {np_a} {relation} {np_b}", 0
    if template == 2:
        return f"{np_b} with {np_a} {relation} it", 0
    return f"{np_a} is {relation} {np_b}", 0


def _caption(dice: _Dice, objects: list[dict], background: str) -> tuple[str, int, int]:
    """One caption draw: (text, states_position, states_size)."""
    with_size = dice.uniform() < _STATE_SIZE_PROBABILITY
    if len(objects) == 1:
        text, position = _one_object_caption(dice, objects[0], with_size, background)
    else:
        text, position = _two_object_caption(dice, objects, with_size)
    return text, position, int(with_size)


def _captions(dice: _Dice, objects: list[dict], background: str
              ) -> tuple[list[str], list[int], list[int], list[_Dice]]:
    """CAPTIONS_PER_IMAGE distinct captions with their states_position / states_size flags,
    and a copy of the dice as each caption's draw began (to draw it again for other objects)."""
    captions, states_position, states_size, starts = [], [], [], []
    for _ in range(20 * CAPTIONS_PER_IMAGE):
        start = dice.copy()
        text, position, with_size = _caption(dice, objects, background)
        if text in captions:
            continue
        captions.append(text)
        states_position.append(position)
        states_size.append(with_size)
        starts.append(start)
        if len(captions) == CAPTIONS_PER_IMAGE:
            return captions, states_position, states_size, starts
    raise RuntimeError(f"could not make {CAPTIONS_PER_IMAGE} distinct captions for {objects}")


# ---------------------------------------------------------------------------------------------
# Counterfactual captions: each caption drawn again for a scene with one attribute changed.

COUNTERFACTUAL_KINDS = ("shape", "color", "size", "place")
# Third element of the (seed, index, stream) key of a scene's counterfactual draws, apart from
# the scene's own (seed, index) stream so that the scenes stay as they are.
_COUNTERFACTUAL_STREAM = 1


def _changed_objects(rng: np.random.Generator, objects: list[dict], kind: str) -> list[dict]:
    """A copy of `objects` with one attribute of one object changed ("shape", "color",
    "size"), or, for "place", the layout mirrored left-right (top-bottom when every object is
    in the centre column; a lone object in the centre cell moves to another cell)."""
    changed = [dict(o) for o in objects]
    if kind == "place":
        if any(o["col"] != 1 for o in changed):
            for o in changed:
                o["col"] = GRID - 1 - o["col"]
        elif any(o["row"] != 1 for o in changed):
            for o in changed:
                o["row"] = GRID - 1 - o["row"]
        else:
            cell = GRID * GRID // 2
            cell = (cell + int(rng.integers(1, GRID * GRID))) % (GRID * GRID)
            changed[0]["row"], changed[0]["col"] = divmod(cell, GRID)
        return changed
    count = {"shape": len(SHAPES), "color": len(COLORS), "size": len(SIZES)}[kind]
    target = changed[int(rng.integers(len(changed)))]
    target[kind] = (target[kind] + int(rng.integers(1, count))) % count
    return changed


def counterfactual_captions(seed: int, index: int, objects: list[dict], captions: list[str],
                            starts: list[_Dice], background: str) -> list[str]:
    """One false caption per caption: the same template and words drawn again for the scene
    with one attribute changed (a shape, a colour, a size or the places, the kind drawn at
    random among those that change the caption's text), e.g. "a red circle in the top left"
    -> "a red star in the top left" or "a red circle in the top right".

    Args:
      seed, index: the scene's key; the draws use their own stream.
      objects: the scene's objects.
      captions: its captions.
      starts: per caption, the dice as its draw began (`_captions`).
      background: the background's name.

    Returns:
      len(captions) strings, each different from its caption.
    """
    rng = np.random.default_rng([seed, index, _COUNTERFACTUAL_STREAM])
    out = []
    for caption, start in zip(captions, starts):
        for kind in rng.permutation(COUNTERFACTUAL_KINDS):
            text, _, _ = _caption(start.copy(), _changed_objects(rng, objects, kind),
                                  background)
            if text != caption:
                break
        out.append(text)
    return out


# ---------------------------------------------------------------------------------------------
# Scenes.


def make_scene(seed: int, index: int, image_size: int = 64,
               shape_map: Sequence[int] | None = None) -> Scene:
    """Generates scene `index` of the set with `seed` (a pure function of its arguments).

    Args:
      seed: non-negative dataset seed.
      index: non-negative scene index.
      image_size: S, side of the square image in pixels (>= 32; 64 and 128 are the sizes used).
      shape_map: optional counterfactual: an object of shape s is drawn as shape_map[s]
        (indices into SHAPES) while the captions and the ground truth still name s, e.g. to
        probe whether a discriminator checks the shape a caption names. Every other draw
        (background, colours, places, sizes) is the same as without it.

    Returns:
      Scene with `image` [S, S, 3] uint8 and its captions and ground truth.
    """
    if image_size < MIN_IMAGE_SIZE:
        raise ValueError(f"image_size must be >= {MIN_IMAGE_SIZE}, got {image_size}")
    if seed < 0 or index < 0:
        raise ValueError(f"seed and index must be non-negative, got {seed}, {index}")
    rng = np.random.default_rng([seed, index])
    dice = _Dice(rng)
    background = dice.below(len(_BACKGROUNDS))
    image = _background(rng, dice, background, image_size)  # [S, S, 3] int16
    num_objects = 1 + int(dice.uniform() < 0.5)
    cells = [dice.below(GRID * GRID)]
    if num_objects == 2:
        other = dice.below(GRID * GRID - 1)
        cells.append(other + (other >= cells[0]))
    objects, radii = [], []
    for cell in cells:
        obj = {"shape": dice.below(len(SHAPES)), "color": dice.below(len(COLORS)),
               "size": dice.below(len(SIZES)), "row": cell // GRID, "col": cell % GRID}
        objects.append(obj)
        radii.append(_RADIUS[obj["size"]] * image_size
                     * (1.0 + (2.0 * dice.uniform() - 1.0) * _RADIUS_JITTER))
    centres = _place(dice, cells, radii, image_size)
    boxes, areas = [], []
    for obj, (cx, cy), radius in zip(objects, centres, radii):
        rgb = COLOR_RGB[obj["color"]] + np.asarray(
            [dice.below(2 * _COLOR_JITTER + 1) - _COLOR_JITTER for _ in range(3)], np.float32)
        drawn = obj["shape"] if shape_map is None else shape_map[obj["shape"]]
        box, area = _draw(image, drawn, rgb, cx, cy, radius)
        boxes.append(box)
        areas.append(area)
    background_name = _BACKGROUNDS[background][0]
    captions, states_position, states_size, starts = _captions(dice, objects, background_name)
    np.clip(image, 0, 255, out=image)
    return Scene(image=image.astype(np.uint8), captions=captions, objects=objects,
                 label=class_id(objects[0]["shape"], objects[0]["color"]),
                 states_position=states_position, states_size=states_size, boxes=boxes,
                 areas=areas, background=background,
                 counterfactuals=counterfactual_captions(seed, index, objects, captions, starts,
                                                         background_name))


def scene_filename(split: str, index: int) -> str:
    """Synthetic id / file stem of scene `index` of `split`: 'train_0000042'."""
    return f"{split}_{index:07d}"


class SceneItems(collections.abc.Sequence):
    """The scenes of one split as lazily rendered `dataset_writer.Item`s."""

    def __init__(self, split: str, num: int, *, seed: int, image_size: int,
                 counterfactuals: bool = False):
        if split not in SPLIT_INDEX_OFFSET:
            raise ValueError(f"unknown split {split!r}; expected one of {list(SPLIT_INDEX_OFFSET)}")
        self.split, self.num, self.seed, self.image_size = split, num, seed, image_size
        self.counterfactuals = counterfactuals

    def __len__(self) -> int:
        return self.num

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self.num))]
        if not 0 <= i < self.num:
            raise IndexError(i)
        scene = make_scene(self.seed, SPLIT_INDEX_OFFSET[self.split] + i, self.image_size)
        return dataset_writer.Item(
            filename=scene_filename(self.split, i), captions=scene.captions,
            image_bytes=image_io.encode_png(scene.image), label=scene.label,
            labels=sorted({class_id(o["shape"], o["color"]) for o in scene.objects}),
            objects={f: [o[f] for o in scene.objects] for f in schema.OBJECT_FIELDS},
            states_position=scene.states_position, states_size=scene.states_size,
            counterfactual_captions=scene.counterfactuals if self.counterfactuals else None)


def dataset_extra(seed: int, counterfactuals: bool = False) -> dict:
    """`dataset_info.extra` of a synthetic dataset."""
    extra = {"shapes": list(SHAPES), "colors": list(COLORS), "sizes": list(SIZES), "grid": GRID,
             "rows": list(ROWS), "cols": list(COLS), "seed": seed,
             "captions_per_image": CAPTIONS_PER_IMAGE}
    if counterfactuals:
        extra[schema.HAS_COUNTERFACTUALS] = True
    return extra


def generate_tfrecords(output_dir: str, *, num_train: int, num_val: int, image_size: int,
                       seed: int, embed_fn: dataset_writer.EmbedFn, num_shards: int,
                       text_encoder_handles: dict, counterfactuals: bool = False,
                       **writer_kwargs) -> dataset_writer.WriteSummary:
    """Writes train/val TFRecord shards and dataset_info.json (source "synthetic").

    Args:
      output_dir: dataset directory.
      num_train: train scenes (indices 0..num_train-1).
      num_val: val scenes (indices SPLIT_INDEX_OFFSET["val"] + 0..num_val-1).
      image_size: S.
      seed: dataset seed.
      embed_fn: captions -> ([N, T, D] float32, [N] int32), see dataset_writer.make_embed_fn.
      num_shards: shards per split.
      text_encoder_handles: {"preprocessor": handle, "encoder": handle} recorded in
        dataset_info.
      counterfactuals: also embed and write each caption's counterfactual (`Scene.
        counterfactuals`; twice the text-encoder work and record size).
      **writer_kwargs: further dataset_writer.write_dataset arguments.

    Returns:
      dataset_writer.WriteSummary.
    """
    splits = {name: SceneItems(name, n, seed=seed, image_size=image_size,
                               counterfactuals=counterfactuals)
              for name, n in (("train", num_train), ("val", num_val)) if n > 0}
    settings = dict(writer_kwargs.pop("settings", None) or {}, seed=seed, image_size=image_size)
    return dataset_writer.write_dataset(
        output_dir, splits, embed_fn=embed_fn, num_shards=num_shards, source="synthetic",
        text_encoder_handles=text_encoder_handles, label_vocabulary=CLASS_NAMES,
        image_size=[image_size, image_size], extra=dataset_extra(seed, counterfactuals),
        settings=settings,
        **writer_kwargs)


def generate_coco(output_dir: str, *, num_train: int, num_val: int, image_size: int,
                  seed: int, progress: bool = True) -> dict[str, int]:
    """Writes the scenes as a COCO-format folder.

    Layout: `images/<split>/<split>_XXXXXXX.png`, `annotations/captions_<split>.json`
    (images + one annotation per caption) and `annotations/instances_<split>.json` (one
    annotation per object with `category_id` = shape index + 1, `bbox` [x, y, w, h], `area`;
    categories = SHAPES). Convert with
    `python -m data_tools.coco_to_tfrecord --coco_dir DIR --splits train=train,val=val
    --images_subdir images`.

    Returns:
      split -> number of images written.
    """
    categories = [{"id": i + 1, "name": name, "supercategory": "shape"}
                  for i, name in enumerate(SHAPES)]
    counts = {}
    for split, num in (("train", num_train), ("val", num_val)):
        if num <= 0:
            continue
        image_dir = os.path.join(output_dir, "images", split)
        tf.io.gfile.makedirs(image_dir)
        tf.io.gfile.makedirs(os.path.join(output_dir, "annotations"))
        images, captions, instances = [], [], []
        for i in tqdm.tqdm(range(num), desc=split, unit="img", disable=not progress,
                           file=sys.stderr, dynamic_ncols=True):
            scene = make_scene(seed, SPLIT_INDEX_OFFSET[split] + i, image_size)
            file_name = scene_filename(split, i) + ".png"
            with tf.io.gfile.GFile(os.path.join(image_dir, file_name), "wb") as f:
                f.write(image_io.encode_png(scene.image))
            image_id = i + 1
            images.append({"id": image_id, "file_name": file_name, "width": image_size,
                           "height": image_size})
            for caption in scene.captions:
                captions.append({"id": len(captions) + 1, "image_id": image_id,
                                 "caption": caption})
            for obj, box, area in zip(scene.objects, scene.boxes, scene.areas):
                instances.append({
                    "id": len(instances) + 1, "image_id": image_id,
                    "category_id": obj["shape"] + 1, "bbox": box, "area": area, "iscrowd": 0,
                    "attributes": {"color": COLORS[obj["color"]], "size": SIZES[obj["size"]],
                                   "row": obj["row"], "col": obj["col"]}})
        header = {"info": {"description": f"xmcgan_tf synthetic scenes, seed {seed}",
                           "version": "1.0"}, "licenses": [], "images": images}
        annotations = os.path.join(output_dir, "annotations")
        files.write_json_atomic(os.path.join(annotations, f"captions_{split}.json"),
                                dict(header, annotations=captions), indent=None, sort_keys=False)
        files.write_json_atomic(os.path.join(annotations, f"instances_{split}.json"),
                                dict(header, annotations=instances, categories=categories),
                                indent=None, sort_keys=False)
        counts[split] = num
    return counts


# ---------------------------------------------------------------------------------------------
# Command line.

DEFAULT_PREPROCESSOR = os.path.join("artifacts", "text_encoder", "preprocess")
DEFAULT_ENCODER = os.path.join("artifacts", "text_encoder", "encoder")


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """Defines this tool's flags (the shared writer flags included) in `flag_values`."""
    fv = flag_values
    dataset_writer.define_flags(fv, default_max_tokens=24, default_num_shards=4,
                                default_preprocessor=DEFAULT_PREPROCESSOR,
                                default_encoder=DEFAULT_ENCODER)
    flags.adopt_module_key_flags(dataset_writer, flag_values=fv)
    flags.DEFINE_integer("num_train", 2000, "Train scenes.", lower_bound=0, flag_values=fv)
    flags.DEFINE_integer("num_val", 500, "Validation scenes.", lower_bound=0, flag_values=fv)
    flags.DEFINE_integer("image_size", 64, "Image side in pixels (64 or 128 are used).",
                         lower_bound=MIN_IMAGE_SIZE, flag_values=fv)
    flags.DEFINE_integer("seed", 0, "Dataset seed: scene i of a split depends only on (seed, i).",
                         lower_bound=0, flag_values=fv)
    flags.DEFINE_enum("format", "tfrecord", ["tfrecord", "coco"],
                      "tfrecord: embed the captions and write shards + dataset_info.json; "
                      "coco: write a COCO-format folder (images/, annotations/) for "
                      "data_tools.coco_to_tfrecord (no text encoder needed).", flag_values=fv)
    flags.DEFINE_boolean("counterfactual_captions", False,
                         "Also write, for every caption, a false caption that differs from it "
                         "in one attribute (a shape, colour, size or the places): the negatives "
                         "of train_config.DataConfig.counterfactual_captions. Doubles the "
                         "text-encoder time and the record size.", flag_values=fv)


def run(flag_values: flags.FlagValues,
        make_embed_fn: Callable[[flags.FlagValues], dataset_writer.EmbedFn] = (
            dataset_writer.embed_fn_from_flags)) -> object:
    """Runs the tool with parsed flags; returns the WriteSummary or the COCO split counts."""
    fv = flag_values
    if fv.num_train + fv.num_val == 0:
        raise app.UsageError("--num_train and --num_val are both 0: nothing to generate")
    if fv.format == "coco":
        counts = generate_coco(fv.output_dir, num_train=fv.num_train, num_val=fv.num_val,
                               image_size=fv.image_size, seed=fv.seed)
        print(f"COCO-format scenes written to {fv.output_dir}: {counts}")
        return counts
    kwargs = dataset_writer.writer_kwargs_from_flags(fv)
    return generate_tfrecords(fv.output_dir, num_train=fv.num_train, num_val=fv.num_val,
                              image_size=fv.image_size, seed=fv.seed,
                              embed_fn=make_embed_fn(fv),
                              counterfactuals=fv.counterfactual_captions, **kwargs)


def entry_point() -> None:
    """The `xmcgan-synthetic-scenes` console script (and `python -m data_tools.synthetic_scenes`)."""
    dataset_writer.run_tool(define_flags, run)


if __name__ == "__main__":
    entry_point()
