"""The upload decoder under random and mutated input: whatever arrives, the
answer is a valid image or one of the three client errors (never another
exception, which the gateway would turn into a 500)."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from services.common import imageio
from services.common.errors import LightboxError

CLIENT_ERRORS = {"invalid_image", "image_too_large", "image_too_small"}
# CI runs a fixed, repeatable set; FUZZ_EXAMPLES=5000 explores fresh inputs locally.
_EXAMPLES = os.environ.get("FUZZ_EXAMPLES")
FUZZ = settings(
    max_examples=int(_EXAMPLES or 250),
    deadline=None,
    derandomize=_EXAMPLES is None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def _encode(img: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _seeds() -> list[bytes]:
    rng = np.random.default_rng(5)
    rgb = Image.fromarray(rng.integers(0, 255, (40, 56, 3), dtype=np.uint8))
    rgba = Image.fromarray(rng.integers(0, 255, (33, 21, 4), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6
    return [
        _encode(rgb, "JPEG", quality=80),
        _encode(rgb, "JPEG", quality=70, progressive=True, exif=exif.tobytes()),
        _encode(rgba, "PNG"),
        _encode(rgb.convert("P"), "PNG"),
        _encode(rgb.convert("I;16"), "PNG"),
        _encode(rgb.convert("L"), "PNG", optimize=True),
        _encode(rgba, "WEBP", lossless=True),
        _encode(rgb, "WEBP", quality=60),
    ]


SEEDS = _seeds()
MAGIC = [b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"RIFF\x00\x00\x00\x00WEBP"]


def check(data: bytes) -> None:
    try:
        info = imageio.verify(data)
    except LightboxError as err:
        assert err.code in CLIENT_ERRORS, (err.code, err.message)
        return
    assert info.format in ("jpeg", "png", "webp")
    assert imageio.MIN_SIDE <= min(info.width, info.height)
    assert max(info.width, info.height) <= imageio.MAX_SIDE


def test_seeds_are_valid_images() -> None:
    for data in SEEDS:
        assert imageio.verify(data).format in ("jpeg", "png", "webp")


@FUZZ
@given(st.binary(max_size=2048))
def test_random_bytes(data: bytes) -> None:
    check(data)


@FUZZ
@given(st.sampled_from(MAGIC), st.binary(max_size=2048))
def test_random_bytes_behind_a_real_signature(magic: bytes, tail: bytes) -> None:
    check(magic + tail)


@FUZZ
@given(
    st.sampled_from(SEEDS),
    st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), max_size=12),
    st.one_of(st.none(), st.floats(0, 1)),
)
def test_mutated_images(seed: bytes, flips: list[tuple[float, int]], cut: float | None) -> None:
    data = bytearray(seed)
    for where, value in flips:
        data[min(len(data) - 1, int(where * len(data)))] = value
    if cut is not None:
        data = data[: int(cut * len(data))]
    check(bytes(data))


@pytest.mark.parametrize("side", [30000, 65535])
def test_header_bombs_are_refused_before_decoding(side: int) -> None:
    """A PNG header declaring side x side pixels with almost no data behind it."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body))
            + kind
            + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        )

    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\x00" * 1024))
        + chunk(b"IEND", b"")
    )
    assert len(png) < 300
    with pytest.raises(LightboxError) as err:
        imageio.verify(png)
    assert err.value.code == "image_too_large"
