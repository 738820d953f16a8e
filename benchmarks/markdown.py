"""What the benchmarks write into BENCHMARKS.md: marked sections and captioned image rows."""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
from PIL import Image
from PIL import ImageDraw


def replace_section(markdown_path: str, section: str, begin: str, end: str) -> None:
    """Replaces the text between the markers `begin` and `end` of `markdown_path` with
    `section` (appending the marked block when the markers are absent); written atomically."""
    with open(markdown_path, encoding="utf-8") as f:
        text = f.read()
    block = f"{begin}\n{section}{end}"
    if begin in text and end in text:
        text = text[:text.index(begin)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    with open(markdown_path + ".tmp", "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(markdown_path + ".tmp", markdown_path)


def caption_grid(images: np.ndarray, captions: Sequence[str], width: int = 30) -> Image.Image:
    """A row of images [N, S, S, 3] in [0, 1], each caption written (wrapped) under its image."""
    count, size = len(images), images.shape[1]
    scale = max(1, 128 // size)
    cell = size * scale
    lines = [wrap(c, width) for c in captions]
    text_height = 12 * max(len(l) for l in lines) + 6
    canvas = Image.new("RGB", (count * (cell + 4), cell + text_height), "white")
    draw = ImageDraw.Draw(canvas)
    for i, (image, text) in enumerate(zip(images, lines)):
        tile = Image.fromarray((np.clip(image, 0, 1) * 255).astype(np.uint8)).resize(
            (cell, cell), Image.NEAREST)
        canvas.paste(tile, (i * (cell + 4), 0))
        draw.multiline_text((i * (cell + 4) + 2, cell + 3), "\n".join(text), fill="black",
                            spacing=2)
    return canvas


def wrap(text: str, width: int) -> list[str]:
    """Words of `text` in lines of at most `width` characters (a longer word keeps its line)."""
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return lines + [line]
