from __future__ import annotations

import io
import time

import numpy as np
import pytest
from PIL import Image, ImageCms

from services.common import imageio
from services.common.errors import LightboxError


def enc(arr: np.ndarray, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_format_by_content(fmt: str) -> None:
    data = enc(np.full((20, 30, 3), 100, np.uint8), fmt)
    info = imageio.probe(data)
    assert info.format == fmt.lower() and (info.width, info.height) == (30, 20)


@pytest.mark.parametrize(
    "data",
    [b"", b"GIF89a" + b"\0" * 100, b"<html><body>hi</body></html>", b"<svg/>", b"\x89PNG garbage"],
)
def test_not_an_image(data: bytes) -> None:
    with pytest.raises(LightboxError) as err:
        imageio.verify(data)
    assert err.value.code == "invalid_image"


def test_truncated_jpeg_is_invalid() -> None:
    rng = np.random.default_rng(0)
    data = enc(rng.integers(0, 255, (200, 200, 3), dtype=np.uint8), "JPEG")
    with pytest.raises(LightboxError) as err:
        imageio.verify(data[: len(data) // 2])
    assert err.value.code == "invalid_image"


def test_limits_from_the_header() -> None:
    with pytest.raises(LightboxError) as err:
        imageio.probe(enc(np.zeros((15, 40, 3), np.uint8), "PNG"))
    assert err.value.code == "image_too_small"
    with pytest.raises(LightboxError) as err:
        imageio.probe(enc(np.zeros((16, 4097, 3), np.uint8), "PNG"))
    assert err.value.code == "image_too_large"
    assert err.value.extra["received_size"] == [4097, 16]


def test_decompression_bomb_refused_before_decoding() -> None:
    # A 30000x30000 PNG header on a tiny file: refused from the header, fast.
    img = Image.new("1", (30000, 30000))
    buf = io.BytesIO()
    img.save(buf, "PNG", optimize=True)
    data = buf.getvalue()
    assert len(data) < 200_000
    t0 = time.monotonic()
    with pytest.raises(LightboxError) as err:
        imageio.verify(data)
    assert err.value.code == "image_too_large"
    assert time.monotonic() - t0 < 5


def test_exif_orientation_applied() -> None:
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :20] = 255  # left half white
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 CW on display
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif, quality=100)
    info = imageio.probe(buf.getvalue())
    assert (info.width, info.height) == (20, 40)
    rgb, alpha = imageio.decode(buf.getvalue())
    assert rgb.shape == (40, 20, 3) and alpha is None
    assert rgb[:5].mean() > 200 and rgb[-5:].mean() < 50  # white ended up on top


def test_icc_profile_converted_to_srgb() -> None:
    arr = np.full((32, 32, 3), (200, 60, 60), np.uint8)
    lab = ImageCms.createProfile("LAB")  # any non-sRGB profile changes values on conversion
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
    data_plain = enc(arr, "PNG")
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG", icc_profile=srgb.tobytes())
    rgb, _ = imageio.decode(buf.getvalue())
    assert np.abs(rgb.astype(int) - arr).max() <= 2  # sRGB -> sRGB is (nearly) identity
    assert imageio.decode(data_plain)[0].tolist() == arr.tolist()
    assert lab is not None


def test_alpha_is_returned() -> None:
    rgba = np.zeros((20, 20, 4), np.uint8)
    rgba[5:15, 5:15] = (10, 20, 30, 255)
    rgb, alpha = imageio.decode(enc(rgba, "PNG"))
    assert alpha is not None and alpha[10, 10] == 255 and alpha[0, 0] == 0
    assert tuple(rgb[10, 10]) == (10, 20, 30)
