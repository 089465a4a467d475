"""Image decoding and validation: format by content, limits checked from the
header before any pixel is decoded, EXIF orientation applied, colour converted
to sRGB. Output convention: RGB uint8 HWC."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageCms, ImageOps

from services.common.errors import InvalidImage, LightboxError

MAX_SIDE = 4096
MIN_SIDE = 16
# PIL's own bomb guard, as a second line behind our header check.
Image.MAX_IMAGE_PIXELS = MAX_SIDE * MAX_SIDE * 2

_EXIF_ORIENTATION = 0x0112
_SRGB = ImageCms.createProfile("sRGB")


@dataclass(frozen=True)
class ImageInfo:
    format: str  # "jpeg" | "png" | "webp"
    width: int  # after EXIF orientation
    height: int


def sniff_format(data: bytes) -> str | None:
    """The format from the file's magic bytes, whatever its name or declared type."""
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def _open(data: bytes) -> tuple[Image.Image, str]:
    fmt = sniff_format(data)
    if fmt is None:
        raise InvalidImage(
            "The file is not a JPEG, PNG or WebP image.",
            guidance="Send a JPEG, PNG or WebP file; the format is read from the content.",
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=[fmt.upper()])
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise LightboxError(
            f"The image declares more than {MAX_SIDE}x{MAX_SIDE} pixels.",
            code="image_too_large",
            guidance=f"Resize the image to at most {MAX_SIDE} pixels a side.",
        ) from None
    except Exception as exc:
        raise InvalidImage(f"The image could not be read: {exc}.") from None
    return img, fmt


def probe(data: bytes) -> ImageInfo:
    """Validate format and dimensions from the header alone (no pixel decode)."""
    img, fmt = _open(data)
    w, h = img.size
    try:
        orientation = img.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception:
        orientation = 1
    if orientation in (5, 6, 7, 8):
        w, h = h, w
    if w > MAX_SIDE or h > MAX_SIDE:
        raise LightboxError(
            f"The image is {w}x{h}; the limit is {MAX_SIDE}x{MAX_SIDE}.",
            code="image_too_large",
            guidance=f"Resize the image to at most {MAX_SIDE} pixels a side.",
            extra={"received_size": [w, h], "max_size": [MAX_SIDE, MAX_SIDE]},
        )
    if w < MIN_SIDE or h < MIN_SIDE:
        raise LightboxError(
            f"The image is {w}x{h}; the minimum is {MIN_SIDE}x{MIN_SIDE}.",
            code="image_too_small",
            guidance=f"Send an image of at least {MIN_SIDE} pixels a side.",
            extra={"received_size": [w, h]},
        )
    return ImageInfo(fmt, w, h)


def _to_srgb(img: Image.Image) -> Image.Image:
    icc = img.info.get("icc_profile")
    if not icc:
        return img
    try:
        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        mode = "RGBA" if img.mode == "RGBA" else "RGB"
        if img.mode not in ("RGB", "RGBA"):
            img = img.convert(mode)
        return ImageCms.profileToProfile(img, src, _SRGB, outputMode=mode)
    except (ImageCms.PyCMSError, OSError, ValueError):
        # A broken embedded profile: the pixels are still usable as sRGB.
        return img


def decode(data: bytes) -> tuple[np.ndarray, np.ndarray | None]:
    """Fully decode: (RGB uint8 HxWx3, alpha HxW or None if the image has none).

    EXIF orientation is applied and embedded ICC profiles converted to sRGB.
    Truncated or corrupt files raise InvalidImage."""
    probe(data)
    img, _ = _open(data)
    try:
        img.load()
        img = ImageOps.exif_transpose(img)
    except Exception as exc:
        raise InvalidImage(f"The image data is truncated or corrupt: {exc}.") from None
    img = _to_srgb(img)
    alpha = None
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = np.asarray(img.convert("RGBA"))
        alpha = np.ascontiguousarray(rgba[..., 3])
        if alpha.min() == 255:
            alpha = None
        rgb = np.ascontiguousarray(rgba[..., :3])
    else:
        rgb = np.asarray(img.convert("RGB"))
    return rgb, alpha


def verify(data: bytes) -> ImageInfo:
    """Probe, then decode every pixel once to catch truncation; returns the info."""
    info = probe(data)
    decode(data)
    return info
