"""The one lossy step: raw pixels -> JPEG, PNG or WebP bytes.

Input arrays are uint8: (H, W) greyscale, (H, W, 3) RGB or (H, W, 4) RGBA.
Everything is sRGB, and JPEG/WebP files say so with an embedded sRGB ICC profile,
so colour-managed viewers and print shops do not guess."""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageCms

from services.common.errors import InvalidParameter

FORMATS = ("jpeg", "png", "webp")
_ALIASES = {"jpg": "jpeg"}
# At high quality, full-resolution chroma keeps thin coloured edges (labels,
# product outlines) crisp; below it 4:2:0 saves more than it costs.
FULL_CHROMA_QUALITY = 90


@dataclass(frozen=True)
class EncodeOptions:
    """A validated encode request."""

    format: str = "png"
    quality: int = 90
    png_compress_level: int = 1
    webp_method: int = 4


@lru_cache(maxsize=1)
def srgb_profile() -> bytes:
    """The sRGB ICC profile bytes embedded in JPEG and WebP output."""
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def parse_format(name: str, default: str, field: str = "encode.format") -> str:
    """A format name ("jpeg", "jpg", "png", "webp"; "" -> default) -> canonical name."""
    fmt = name.strip().lower() or default
    fmt = _ALIASES.get(fmt, fmt)
    if fmt not in FORMATS:
        raise InvalidParameter(field, f"unknown format {name!r}; one of {', '.join(FORMATS)}")
    return fmt


def parse_quality(quality: int, default: int, field: str = "encode.quality") -> int:
    """0 -> default; otherwise 10..100."""
    if quality == 0:
        return default
    if not 10 <= quality <= 100:
        raise InvalidParameter(field, f"quality {quality} is outside 10..100")
    return quality


def _image(pixels: np.ndarray) -> Image.Image:
    if pixels.dtype != np.uint8:
        raise TypeError(f"encode needs uint8 pixels, got {pixels.dtype}")
    if pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] == 1):
        return Image.fromarray(pixels.reshape(pixels.shape[:2]), "L")
    if pixels.ndim == 3 and pixels.shape[2] in (3, 4):
        return Image.fromarray(pixels, "RGB" if pixels.shape[2] == 3 else "RGBA")
    raise ValueError(f"encode needs (H, W), (H, W, 3) or (H, W, 4), got {pixels.shape}")


def encode(pixels: np.ndarray, options: EncodeOptions) -> bytes:
    """Encode uint8 greyscale/RGB/RGBA pixels. JPEG cannot carry alpha: RGBA input
    with format "jpeg" is an InvalidParameter (flatten it first)."""
    image = _image(pixels)
    buf = io.BytesIO()
    if options.format == "jpeg":
        if image.mode == "RGBA":
            raise InvalidParameter(
                "encode.format", "jpeg has no transparency; flatten onto a colour or use png/webp"
            )
        image.save(
            buf,
            "JPEG",
            quality=options.quality,
            progressive=True,
            optimize=True,
            subsampling=0 if options.quality >= FULL_CHROMA_QUALITY else 2,
            icc_profile=srgb_profile() if image.mode == "RGB" else None,
        )
    elif options.format == "png":
        image.save(buf, "PNG", compress_level=options.png_compress_level)
    elif options.format == "webp":
        image.save(
            buf,
            "WEBP",
            quality=options.quality,
            method=options.webp_method,
            icc_profile=srgb_profile(),
            exact=image.mode == "RGBA",
        )
    else:
        raise InvalidParameter("encode.format", f"unknown format {options.format!r}")
    return buf.getvalue()
