"""Reading, checking and normalising image files for the TFRecord writers (SPEC §1.1, §1.4).

Every stored image is an encoded RGB PNG or JPEG that TensorFlow's own decoder (the one
training uses) reads. Files that already are RGB PNG/JPEG in the upright orientation are
stored byte for byte once that decoder accepts them (PIL does not check, for example, a PNG
chunk's CRC; TensorFlow does); everything else (grayscale, CMYK, palette, alpha,
16-bit, other formats, EXIF-rotated, cropped) is decoded, converted to RGB and re-encoded: JPEG
sources as JPEG (quality 95), all others as lossless PNG. Alpha is composited onto white.
"""

from __future__ import annotations

import dataclasses
import io
import os
import re

import numpy as np
import tensorflow as tf
from PIL import Image
from PIL import ImageOps

JPEG_QUALITY = 95
_EXIF_ORIENTATION = 0x0112
_KEPT_FORMATS = ("JPEG", "PNG")


class ImageError(ValueError):
    """An image that cannot be read or decoded; the message names the file and the cause."""


@dataclasses.dataclass(frozen=True)
class RgbImage:
    """An image ready to be stored.

    Attributes:
      data: encoded PNG or JPEG bytes, 3-channel RGB.
      height: pixel rows.
      width: pixel columns.
      source_mode: PIL mode of the source ("RGB", "L", "CMYK", "RGBA", "P", ...).
      source_format: PIL format of the source ("JPEG", "PNG", "GIF", ...).
      converted: True when `data` differs from the source bytes (mode conversion, EXIF
        rotation, crop or format change).
    """

    data: bytes
    height: int
    width: int
    source_mode: str
    source_format: str
    converted: bool


def read_file(path: str) -> bytes:
    """Returns the bytes of `path`; raises FileNotFoundError / ImageError naming the file."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"image file not found: {path}")
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise ImageError(f"cannot read {path}: {e}") from e


def _to_rgb(img: Image.Image) -> Image.Image:
    """Converts any PIL mode to RGB; alpha is composited onto white, 16/32-bit rescaled."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        a = np.asarray(img, dtype=np.float64)
        top = 65535.0 if a.max(initial=0.0) > 255.0 else 255.0
        gray = np.clip(np.round(a * (255.0 / top)), 0, 255).astype(np.uint8)
        return Image.fromarray(np.repeat(gray[..., None], 3, axis=-1), "RGB")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def encode_png(pixels: np.ndarray, compress_level: int = 1) -> bytes:
    """Encodes `pixels` [H, W, 3] uint8 as PNG (compress_level 0..9; 1 is fast)."""
    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[-1] != 3:
        raise ValueError(f"expected [H, W, 3] uint8 pixels, got {pixels.shape} {pixels.dtype}")
    buf = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def decode_rgb(data: bytes) -> np.ndarray:
    """Decodes encoded image bytes to [H, W, 3] uint8 RGB (for checks and tests)."""
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(_to_rgb(img))


def check_tensorflow_decodes(data: bytes, name: str) -> None:
    """Raises ImageError unless `tf.io.decode_image` (what training uses) decodes `data`."""
    try:
        tf.io.decode_image(data, channels=3, expand_animations=False)
    except tf.errors.OpError as e:
        cause = re.sub(r"\{\{.*?\}\}\s*", "", e.message.strip().splitlines()[0])
        raise ImageError(f"cannot decode image {name} with TensorFlow's decoder: {cause}"
                         ) from e


def prepare_image(data: bytes, name: str,
                  crop_box: tuple[float, float, float, float] | None = None) -> RgbImage:
    """Decodes, checks and normalises one image.

    Args:
      data: the file's bytes in any format PIL reads.
      name: file name used in error messages.
      crop_box: optional (left, top, right, bottom) pixel box to crop to, clipped to the image.

    Returns:
      RgbImage with RGB PNG/JPEG bytes.

    Raises:
      ImageError: the bytes are not a decodable image (unknown format, truncated, corrupt),
        or the crop box is empty.
    """
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise ImageError(f"cannot decode image {name}: {e}") from e
    source_mode, source_format = img.mode, img.format or "unknown"
    orientation = img.getexif().get(_EXIF_ORIENTATION, 1)
    unchanged = (source_mode == "RGB" and source_format in _KEPT_FORMATS
                 and orientation in (0, 1) and crop_box is None)
    if unchanged:
        check_tensorflow_decodes(data, name)
        return RgbImage(data=data, height=img.height, width=img.width, source_mode=source_mode,
                        source_format=source_format, converted=False)
    try:
        if orientation not in (0, 1):
            img = ImageOps.exif_transpose(img)
        rgb = _to_rgb(img)
    except (OSError, ValueError) as e:
        raise ImageError(f"cannot convert image {name} (mode {source_mode}) to RGB: {e}") from e
    if crop_box is not None:
        left, top, right, bottom = (int(round(v)) for v in crop_box)
        left, top = max(left, 0), max(top, 0)
        right, bottom = min(right, rgb.width), min(bottom, rgb.height)
        if right <= left or bottom <= top:
            raise ImageError(f"crop box {crop_box} of {name} lies outside its "
                             f"{rgb.width}x{rgb.height} pixels")
        rgb = rgb.crop((left, top, right, bottom))
    buf = io.BytesIO()
    if source_format == "JPEG":
        rgb.save(buf, format="JPEG", quality=JPEG_QUALITY)
    else:
        rgb.save(buf, format="PNG")
    return RgbImage(data=buf.getvalue(), height=rgb.height, width=rgb.width,
                    source_mode=source_mode, source_format=source_format, converted=True)
