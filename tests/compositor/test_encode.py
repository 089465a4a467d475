"""Encoding: formats, quality, the sRGB profile and lossless PNG/alpha."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageCms

from services.common.errors import InvalidParameter
from services.compositor.encode import EncodeOptions, encode, parse_format, parse_quality


def smooth_rgb(h: int = 120, w: int = 160) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.dstack([x * 255 // w, y * 255 // h, (x + y) * 255 // (w + h)]).astype(np.uint8)


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def test_jpeg_is_progressive_with_srgb_profile_and_close() -> None:
    rgb = smooth_rgb()
    image = decode(encode(rgb, EncodeOptions("jpeg", 92)))
    assert image.format == "JPEG" and image.mode == "RGB" and image.info["progressive"]
    profile = ImageCms.ImageCmsProfile(io.BytesIO(image.info["icc_profile"]))
    assert "sRGB" in ImageCms.getProfileDescription(profile)
    assert np.abs(np.asarray(image).astype(int) - rgb).mean() < 1.5


def test_jpeg_quality_changes_size() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    assert len(encode(rgb, EncodeOptions("jpeg", 30))) < len(encode(rgb, EncodeOptions("jpeg", 95)))


def test_png_is_lossless_rgba_and_greyscale() -> None:
    rgba = np.random.default_rng(1).integers(0, 256, (40, 50, 4), dtype=np.uint8)
    image = decode(encode(rgba, EncodeOptions("png")))
    assert image.mode == "RGBA" and np.array_equal(np.asarray(image), rgba)
    grey = rgba[..., 0]
    image = decode(encode(grey, EncodeOptions("png")))
    assert image.mode == "L" and np.array_equal(np.asarray(image), grey)


def test_webp_keeps_alpha() -> None:
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[16:48, 16:48] = (200, 40, 40, 255)
    image = decode(encode(rgba, EncodeOptions("webp", 90)))
    assert image.format == "WEBP" and image.mode == "RGBA"
    assert np.array_equal(np.asarray(image)[..., 3], rgba[..., 3])


def test_jpeg_refuses_alpha() -> None:
    with pytest.raises(InvalidParameter) as info:
        encode(np.zeros((8, 8, 4), np.uint8), EncodeOptions("jpeg"))
    assert info.value.field == "encode.format"


def test_parse_format_and_quality() -> None:
    assert parse_format("", "jpeg") == "jpeg"
    assert parse_format("JPG", "png") == "jpeg"
    assert parse_format("WebP", "png") == "webp"
    assert parse_quality(0, 90) == 90 and parse_quality(10, 90) == 10
    for bad in ("gif", "tiff"):
        with pytest.raises(InvalidParameter):
            parse_format(bad, "png")
    for bad in (5, 101, -1):
        with pytest.raises(InvalidParameter) as info:
            parse_quality(bad, 90)
        assert info.value.field == "encode.quality"
