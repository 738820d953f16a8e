"""Image grids with a caption under each image: training samples (PNG and TensorBoard), the
grids of `xmcgan-generate` and `xmcgan-client`, and the benchmarks' sample rows.

Legend: N images of S×S pixels.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from PIL import Image
from PIL import ImageDraw
from PIL import ImageFont

# Small images are enlarged (nearest neighbour) to at least this many pixels, so that a
# caption of a few words fits under each.
MIN_CELL_PIXELS = 128
PADDING = 4
LINE_SPACING = 2


def to_uint8(images: np.ndarray) -> np.ndarray:
    """[..., 3] float in [0, 1] (clipped) or uint8 -> uint8."""
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images
    return np.round(np.clip(images.astype(np.float32), 0.0, 1.0) * 255.0).astype(np.uint8)


def wrap(text: str, width: int) -> list[str]:
    """The words of `text` in lines of at most `width` characters (a longer word keeps its
    own line)."""
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return lines + [line] if line or not lines else lines


def image_grid(images: np.ndarray, texts: Sequence[str] | None = None,
               columns: int | None = None, min_cell: int = MIN_CELL_PIXELS) -> np.ndarray:
    """Tiles images row-major on white, each with its text (wrapped) underneath.

    Args:
      images: [N, S, S, 3] float in [0, 1] (clipped) or uint8.
      texts: N strings (e.g. the captions), or None for a grid without text.
      columns: images per row; default ceil(sqrt(N)).
      min_cell: images smaller than this are enlarged by an integer factor (nearest
        neighbour) to at least this size when `texts` are given.

    Returns:
      [H, W, 3] uint8.

    Raises:
      ValueError: images not [N, S, S, 3], or texts of another length than N.
    """
    images = to_uint8(images)
    if images.ndim != 4 or images.shape[-1] != 3 or len(images) == 0:
        raise ValueError(f"image_grid expects [N, H, W, 3] images with N >= 1, got shape "
                         f"{images.shape}")
    count, height, width, _ = images.shape
    if texts is not None and len(texts) != count:
        raise ValueError(f"{len(texts)} texts for {count} images")
    columns = max(1, min(columns or math.ceil(math.sqrt(count)), count))
    rows = math.ceil(count / columns)
    scale = max(1, math.ceil(min_cell / max(height, width))) if texts is not None else 1
    cell_h, cell_w = height * scale, width * scale
    font = ImageFont.load_default()
    if texts is not None:
        char_width = max(1, font.getbbox("abcdefghij")[2] // 10)
        line_height = font.getbbox("Ag")[3] + LINE_SPACING
        lines = [wrap(t, max(4, cell_w // char_width)) for t in texts]
        text_height = line_height * max(len(l) for l in lines) + PADDING
    else:
        lines, text_height = None, 0
    canvas = Image.new("RGB", (columns * (cell_w + PADDING) + PADDING,
                               rows * (cell_h + text_height + PADDING) + PADDING), "white")
    draw = ImageDraw.Draw(canvas)
    for index in range(count):
        row, column = divmod(index, columns)
        left = PADDING + column * (cell_w + PADDING)
        top = PADDING + row * (cell_h + text_height + PADDING)
        tile = Image.fromarray(images[index])
        if scale > 1:
            tile = tile.resize((cell_w, cell_h), Image.NEAREST)
        canvas.paste(tile, (left, top))
        if lines is not None:
            draw.multiline_text((left, top + cell_h + 2), "\n".join(lines[index]),
                                fill="black", font=font, spacing=LINE_SPACING)
    return np.asarray(canvas)
