"""Tests of data_tools.image_io: RGB normalisation of stored images."""

import io

import numpy as np
import pytest
from PIL import Image

from data_tools import image_io


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _pixels(rng, h=6, w=5):
    return rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def test_rgb_png_and_jpeg_are_kept_byte_for_byte():
    rng = np.random.default_rng(0)
    for fmt in ("PNG", "JPEG"):
        data = _encode(Image.fromarray(_pixels(rng)), fmt)
        out = image_io.prepare_image(data, f"x.{fmt.lower()}")
        assert out.data == data
        assert not out.converted
        assert (out.height, out.width, out.source_mode, out.source_format) == (6, 5, "RGB", fmt)


def test_grayscale_becomes_rgb_with_equal_channels():
    gray = np.arange(30, dtype=np.uint8).reshape(6, 5) * 8
    out = image_io.prepare_image(_encode(Image.fromarray(gray, "L"), "PNG"), "g.png")
    assert out.converted and out.source_mode == "L"
    rgb = image_io.decode_rgb(out.data)
    assert rgb.shape == (6, 5, 3)
    for c in range(3):
        np.testing.assert_array_equal(rgb[..., c], gray)
    with Image.open(io.BytesIO(out.data)) as img:
        assert img.mode == "RGB" and img.format == "PNG"


def test_rgba_is_composited_on_white():
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (10, 20, 30, 255)  # opaque
    rgba[0, 1] = (10, 20, 30, 0)  # transparent -> white
    rgba[1, 0] = (0, 0, 0, 128)  # half black over white
    rgba[1, 1] = (200, 100, 0, 255)
    out = image_io.prepare_image(_encode(Image.fromarray(rgba, "RGBA"), "PNG"), "a.png")
    rgb = image_io.decode_rgb(out.data).astype(int)
    np.testing.assert_array_equal(rgb[0, 0], (10, 20, 30))
    np.testing.assert_array_equal(rgb[0, 1], (255, 255, 255))
    np.testing.assert_allclose(rgb[1, 0], [255 * (1 - 128 / 255)] * 3, atol=1)
    np.testing.assert_array_equal(rgb[1, 1], (200, 100, 0))
    assert out.source_mode == "RGBA"


def test_palette_image_maps_to_its_colours():
    img = Image.new("P", (3, 1))
    img.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 759)
    img.putdata([0, 1, 2])
    out = image_io.prepare_image(_encode(img, "PNG"), "p.png")
    np.testing.assert_array_equal(image_io.decode_rgb(out.data)[0],
                                  [(255, 0, 0), (0, 255, 0), (0, 0, 255)])
    assert out.source_mode == "P"


def test_cmyk_jpeg_becomes_rgb_jpeg():
    img = Image.new("CMYK", (8, 8), (0, 255, 255, 0))  # pure red in CMYK
    data = _encode(img, "JPEG", quality=100)
    out = image_io.prepare_image(data, "c.jpg")
    assert out.converted and out.source_mode == "CMYK"
    with Image.open(io.BytesIO(out.data)) as stored:
        assert stored.mode == "RGB" and stored.format == "JPEG"
    rgb = image_io.decode_rgb(out.data).astype(int)
    np.testing.assert_allclose(rgb.mean(axis=(0, 1)), [255, 0, 0], atol=6)


def test_sixteen_bit_grayscale_is_rescaled():
    a = np.array([[0, 65535], [32768, 1000]], np.uint16)
    out = image_io.prepare_image(_encode(Image.fromarray(a), "PNG"), "i16.png")
    rgb = image_io.decode_rgb(out.data)
    np.testing.assert_array_equal(rgb[..., 0], np.round(a / 65535.0 * 255).astype(np.uint8))


def test_other_formats_are_reencoded_as_png():
    rng = np.random.default_rng(1)
    pixels = _pixels(rng)
    out = image_io.prepare_image(_encode(Image.fromarray(pixels), "BMP"), "b.bmp")
    assert out.converted and out.source_format == "BMP"
    np.testing.assert_array_equal(image_io.decode_rgb(out.data), pixels)


def test_exif_orientation_is_applied():
    pixels = np.zeros((2, 3, 3), np.uint8)
    pixels[0, 0] = 255  # white top-left
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    data = _encode(Image.fromarray(pixels), "PNG", exif=exif)
    out = image_io.prepare_image(data, "r.png")
    rgb = image_io.decode_rgb(out.data)
    assert rgb.shape == (3, 2, 3)
    np.testing.assert_array_equal(rgb[0, 1], (255, 255, 255))


def test_crop_box_is_clipped_to_the_image():
    rng = np.random.default_rng(2)
    pixels = _pixels(rng, 10, 8)
    data = _encode(Image.fromarray(pixels), "PNG")
    out = image_io.prepare_image(data, "c.png", crop_box=(-3, 2, 5, 20))
    np.testing.assert_array_equal(image_io.decode_rgb(out.data), pixels[2:10, 0:5])
    with pytest.raises(image_io.ImageError, match="c.png"):
        image_io.prepare_image(data, "c.png", crop_box=(20, 20, 30, 30))


@pytest.mark.parametrize("data", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n garbage"])
def test_undecodable_bytes_raise_image_error_naming_the_file(data):
    with pytest.raises(image_io.ImageError, match="bad.png"):
        image_io.prepare_image(data, "bad.png")


def test_a_png_tensorflow_cannot_decode_is_refused():
    png = bytearray(_encode(Image.fromarray(_pixels(np.random.default_rng(5), 16, 16)), "PNG"))
    png[-13] ^= 0xFF  # the CRC of the IDAT chunk: PIL reads the image, TensorFlow does not
    with Image.open(io.BytesIO(bytes(png))) as img:
        img.load()
    with pytest.raises(image_io.ImageError, match="crc.png with TensorFlow's decoder"):
        image_io.prepare_image(bytes(png), "crc.png")


def test_truncated_jpeg_raises():
    data = _encode(Image.fromarray(_pixels(np.random.default_rng(3), 64, 64)), "JPEG")
    with pytest.raises(image_io.ImageError, match="t.jpg"):
        image_io.prepare_image(data[: len(data) // 2], "t.jpg")


def test_read_file_and_png_round_trip(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.jpg"):
        image_io.read_file(str(tmp_path / "missing.jpg"))
    pixels = _pixels(np.random.default_rng(4))
    path = tmp_path / "x.png"
    path.write_bytes(image_io.encode_png(pixels))
    np.testing.assert_array_equal(image_io.decode_rgb(image_io.read_file(str(path))), pixels)
    with pytest.raises(ValueError, match="uint8"):
        image_io.encode_png(pixels.astype(np.float32))
