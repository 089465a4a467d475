"""Embedded upscaler: Lanczos resampling followed by an unsharp mask.

No weights: this is what serves `upscale` when no super-resolution model is deployed,
and the job says so (engines: {"upscale": "lanczos"}). It invents no detail; the
unsharp mask only restores some of the edge contrast that resampling spreads out.

Arrays: image uint8 HxWx3 RGB in, uint8 (scale*H)x(scale*W)x3 out.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np


class UpscaleInputError(ValueError):
    """The request cannot be served (bad shape, scale or size); the caller's fault."""


@dataclass(frozen=True)
class LanczosParams:
    """Knobs; the model reads them from config.pbtxt `parameters`."""

    # Unsharp mask strength: out = in + amount * (in - blur(in)).
    unsharp_amount: float = 0.6
    # Blur sigma in output pixels per unit of scale: the edge spread Lanczos leaves
    # grows with the scale, so 4x gets twice the radius of 2x.
    unsharp_sigma_per_scale: float = 0.5
    # Differences below this many levels are left alone so flat areas and sensor
    # grain are not sharpened into noise.
    unsharp_threshold: int = 2
    # The sharpening runs in bands of this many output rows (bounded memory: a 8192 px
    # wide band of 512 rows is ~25 MB of int16).
    band_rows: int = 512
    # Input and output limits.
    min_side: int = 1
    max_output_side: int = 8192


_FIELDS = {f.name: f for f in dataclasses.fields(LanczosParams)}
SCALES = (2, 4)


def parse_params(raw: dict[str, str]) -> LanczosParams:
    """LanczosParams from config.pbtxt strings; unknown keys and bad values raise."""
    unknown = sorted(set(raw) - set(_FIELDS))
    if unknown:
        raise ValueError(f"unknown upscale_lanczos parameters {unknown}; known: {sorted(_FIELDS)}")
    values: dict[str, Any] = {}
    for key, text in raw.items():
        kind = _FIELDS[key].type
        try:
            value: Any = int(text) if kind == "int" else float(text)
        except ValueError as exc:
            raise ValueError(f"upscale_lanczos parameter {key}={text!r} is not a {kind}") from exc
        if value < 0 or (isinstance(value, float) and not math.isfinite(value)):
            raise ValueError(f"upscale_lanczos parameter {key}={text!r} must be >= 0")
        values[key] = value
    params = LanczosParams(**values)
    if params.band_rows < 16 or params.max_output_side < 16 or params.min_side < 1:
        raise ValueError("band_rows and max_output_side must be >= 16, min_side >= 1")
    return params


def check_request(image: np.ndarray, scale: int, params: LanczosParams) -> None:
    """Raise UpscaleInputError unless `image` and `scale` can be served."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise UpscaleInputError(
            f"IMAGE must be uint8 HxWx3 RGB, got {image.dtype} {list(image.shape)}"
        )
    if scale not in SCALES:
        raise UpscaleInputError(f"SCALE must be one of {SCALES}, got {scale}")
    h, w = image.shape[:2]
    if min(h, w) < params.min_side:
        raise UpscaleInputError(f"IMAGE must be at least {params.min_side} px a side, got {w}x{h}")
    if max(h, w) * scale > params.max_output_side:
        raise UpscaleInputError(
            f"{w}x{h} at {scale}x would be {w * scale}x{h * scale}; the limit is "
            f"{params.max_output_side} px a side"
        )


def unsharp(image: np.ndarray, sigma: float, amount: float, threshold: int, band_rows: int) -> None:
    """Sharpen uint8 HxWxC `image` in place, band by band. Each band blurs with a halo
    of 4 sigma rows of the original pixels, so the result equals a whole-image pass
    while only one band is held as int16."""
    if amount <= 0 or sigma <= 0:
        return
    h = image.shape[0]
    halo = int(math.ceil(4 * sigma))
    ksize = 2 * halo + 1
    above = image[:0].copy()  # original rows just above the band (already overwritten)
    for top in range(0, h, band_rows):
        bottom = min(h, top + band_rows)
        hi = min(h, bottom + halo)
        source = np.concatenate([above, image[top:hi]], axis=0)
        blur = cv2.GaussianBlur(source, (ksize, ksize), sigma, borderType=cv2.BORDER_REFLECT)
        core = slice(len(above), len(above) + bottom - top)
        src = source[core].astype(np.int16)
        diff = src - blur[core].astype(np.int16)
        if threshold > 0:
            diff[np.abs(diff) < threshold] = 0
        above = source[max(0, core.stop - halo) : core.stop].copy()
        image[top:bottom] = np.clip(src + np.rint(diff * amount).astype(np.int16), 0, 255)


def upscale(image: np.ndarray, scale: int, params: LanczosParams) -> np.ndarray:
    """`image` (uint8 HxWx3 RGB) resized `scale` times with Lanczos-4, then sharpened."""
    check_request(image, scale, params)
    h, w = image.shape[:2]
    out = cv2.resize(image, (w * scale, h * scale), interpolation=cv2.INTER_LANCZOS4)
    unsharp(
        out,
        params.unsharp_sigma_per_scale * scale,
        params.unsharp_amount,
        params.unsharp_threshold,
        params.band_rows,
    )
    return out
