"""Geometric backgrounds drawn on the CPU: solid colours, linear and radial
gradients, and seamless studio sweeps.

Every function returns a new RGB uint8 array of shape (height, width, 3).
Smooth backgrounds are computed on a coarse grid, interpolated, and quantised
with an 8x8 ordered dither so that slow ramps at 2048 px show no 8-bit banding
(the dither is a fixed pattern: output is deterministic)."""

from __future__ import annotations

import math
from functools import lru_cache

import cv2
import numpy as np

from services.compositor.colors import RGB

_BAYER8 = np.array(
    [
        [0, 32, 8, 40, 2, 34, 10, 42],
        [48, 16, 56, 24, 50, 18, 58, 26],
        [12, 44, 4, 36, 14, 46, 6, 38],
        [60, 28, 52, 20, 62, 30, 54, 22],
        [3, 35, 11, 43, 1, 33, 9, 41],
        [51, 19, 59, 27, 49, 17, 57, 25],
        [15, 47, 7, 39, 13, 45, 5, 37],
        [63, 31, 55, 23, 61, 29, 53, 21],
    ],
    dtype=np.uint16,
)
# Smooth fields are evaluated on a grid this many times coarser than the canvas
# and interpolated: linear ramps come out exact, gentle curves within a fraction
# of one 8-bit step, at a 64th of the cost.
SMOOTH_STEP = 8
# Dither is applied this many rows at a time, so its pattern is built once per
# width and the temporaries stay small at 4096 px.
_BAND = 64


# Fixed point for interpolation: 6 fractional bits (one per Bayer level) and an
# offset, so the coarse samples just outside the canvas may overshoot 0..255 (they
# must, to keep ramps linear up to the edge) without being clipped.
_FRACTION = 64
_OFFSET = 256


@lru_cache(maxsize=8)
def _dither_band(width: int) -> np.ndarray:
    """uint16 (_BAND, width, 3) ordered-dither offsets 0..63, in 1/64 steps."""
    plane = np.tile(_BAYER8, (_BAND // 8, -(-width // 8)))[:, :width]
    return np.ascontiguousarray(np.repeat(plane[:, :, None], 3, axis=2))


def grid(size: int) -> np.ndarray:
    """float32 full-resolution pixel coordinates of the coarse samples along one
    side: SMOOTH_STEP apart, one beyond each edge, so interpolation never clamps."""
    n = -(-size // SMOOTH_STEP) + 2
    return (np.arange(n, dtype=np.float32) - 0.5) * np.float32(SMOOTH_STEP) - 0.5


def smooth_rows(field: np.ndarray, width: int, y0: int, y1: int) -> np.ndarray:
    """Rows y0..y1 of a coarse float32 field sampled on `grid`, at full
    resolution: float32 (y1 - y0, width[, C]), linearly interpolated."""
    step = float(SMOOTH_STEP)
    matrix = np.float32([[step, 0, -0.5 * step - 0.5], [0, step, -0.5 * step - 0.5 - y0]])
    return cv2.warpAffine(
        field, matrix, (width, y1 - y0), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


def quantise_smooth(levels: np.ndarray, width: int, height: int) -> np.ndarray:
    """Coarse float32 (h, w, 3) levels on the 0..255 scale, sampled on `grid`,
    -> uint8 (height, width, 3): interpolated in fixed point and ordered-dithered,
    out = floor(level + dither), so slow ramps show no 8-bit banding. Deterministic."""
    lo, hi = -_OFFSET, 65535 // _FRACTION - _OFFSET - 1
    fixed = np.rint((np.clip(levels, lo, hi) + _OFFSET) * _FRACTION).astype(np.uint16)
    n_y, n_x = fixed.shape[:2]
    step = SMOOTH_STEP
    upsampled = cv2.resize(fixed, (n_x * step, n_y * step), interpolation=cv2.INTER_LINEAR)
    upsampled = upsampled[step : step + height, step : step + width]
    out = np.empty((height, width, 3), dtype=np.uint8)
    dither = _dither_band(width)
    # round(x / 64 - 256.5 + 1/128) == floor(x / 64) - 256 for integer x, no ties.
    beta = -_OFFSET - 0.5 + 1 / (2 * _FRACTION)
    for y0 in range(0, height, _BAND):
        band = upsampled[y0 : y0 + _BAND]
        band = cv2.add(band, dither[: band.shape[0]])
        cv2.convertScaleAbs(band, dst=out[y0 : y0 + _BAND], alpha=1 / _FRACTION, beta=beta)
    return out


def solid(width: int, height: int, color: RGB) -> np.ndarray:
    """A uniform RGB uint8 (height, width, 3) canvas of `color`."""
    # Filling one row and copying it down is ~50x faster than broadcasting a pixel.
    row = np.empty((width, 3), dtype=np.uint8)
    row[:] = np.asarray(color, dtype=np.uint8)
    canvas = np.empty((height, width, 3), dtype=np.uint8)
    canvas[:] = row
    return canvas


def ramp_between(t: np.ndarray, start: RGB, end: RGB) -> np.ndarray:
    """Mix of two colours: t float32 (h, w) in 0..1 -> float32 levels (h, w, 3), 0..255."""
    s = np.asarray(start, dtype=np.float32)
    d = np.asarray(end, dtype=np.float32) - s
    return t[:, :, None] * d + s


def linear_gradient(
    width: int, height: int, start: RGB, end: RGB, angle_deg: float = 90.0
) -> np.ndarray:
    """Linear gradient from `start` to `end` across the canvas, RGB uint8 (H, W, 3).

    `angle_deg` is the direction of travel: 90 runs top to bottom, 0 left to right.
    The ramp spans the canvas exactly along that direction (corner to corner for
    diagonals), so both end colours are reached."""
    a = math.radians(angle_deg)
    dx, dy = math.cos(a), math.sin(a)
    half = 0.5 * (abs(dx) * (width - 1) + abs(dy) * (height - 1)) or 1.0
    xs = (grid(width) - (width - 1) / 2.0) * np.float32(dx / (2 * half))
    ys = (grid(height) - (height - 1) / 2.0) * np.float32(dy / (2 * half))
    # Not clipped: the coarse samples just outside the canvas must continue the ramp
    # for the interpolation to hit both end colours exactly at the edges.
    t = ys[:, None] + xs[None, :] + np.float32(0.5)
    return quantise_smooth(ramp_between(t, start, end), width, height)


def radial_distance(
    width: int, height: int, center: tuple[float, float], radius: float
) -> np.ndarray:
    """float32 (h, w) on the coarse `grid`: distance from `center` (fractions of
    width, height) divided by `radius` (a fraction of the canvas diagonal)."""
    scale = np.float32(1.0 / (radius * math.hypot(width, height)))
    xs = (grid(width) - center[0] * width) * scale
    ys = (grid(height) - center[1] * height) * scale
    return np.sqrt(ys[:, None] ** 2 + xs[None, :] ** 2)


def radial_gradient(
    width: int,
    height: int,
    inner: RGB,
    outer: RGB,
    center: tuple[float, float] = (0.5, 0.45),
    radius: float = 0.6,
) -> np.ndarray:
    """Radial gradient, `inner` at `center` to `outer` at `radius` (share of the
    diagonal) and beyond, eased with smoothstep. RGB uint8 (H, W, 3)."""
    t = radial_distance(width, height, center, radius)
    np.clip(t, 0.0, 1.0, out=t)
    t = t * t * (3.0 - 2.0 * t)
    return quantise_smooth(ramp_between(t, inner, outer), width, height)


def smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    """Hermite step from 0 at edge0 to 1 at edge1, float32, same shape as x."""
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0).astype(np.float32)
    return t * t * (3.0 - 2.0 * t)


def sweep_shading(
    width: int,
    height: int,
    horizon: float = 0.62,
    wall_top: float = 0.82,
    floor_near: float = 0.93,
    hotspot: float = 0.10,
    vignette: float = 0.16,
) -> np.ndarray:
    """Light falloff of a seamless paper sweep, float32 (h, w) on the coarse
    `grid`, 1.0 = full light.

    The wall darkens towards the top, the curve at `horizon` (share of height) is
    brightest and blends into the floor with no visible line, the floor darkens a
    little towards the camera, a soft hotspot sits behind the subject and the
    corners fall off."""
    y = (grid(height) + 0.5) / np.float32(height)
    wall = wall_top + (1.0 - wall_top) * smoothstep(0.0, horizon, y) ** 0.8
    floor = 1.0 + (floor_near - 1.0) * smoothstep(horizon, 1.0, y)
    blend = smoothstep(horizon - 0.12, horizon + 0.12, y)
    rows = wall * (1.0 - blend) + floor * blend
    r = radial_distance(width, height, (0.5, horizon - 0.1), 0.7)
    shade = rows[:, None] * (1.0 + hotspot * (1.0 - smoothstep(0.0, 0.6, r)))
    shade *= 1.0 - vignette * smoothstep(0.35, 1.05, r)
    # The brightest spot (the hotspot on the curve) is the sweep's own colour.
    return shade / np.float32(1.0 + hotspot)


def studio_sweep(
    width: int,
    height: int,
    color: RGB,
    horizon: float = 0.62,
    wall_top: float = 0.82,
    floor_near: float = 0.93,
    hotspot: float = 0.10,
    vignette: float = 0.16,
) -> np.ndarray:
    """A seamless studio sweep in `color`: the colour is the lit curve behind the
    subject; the shading of `sweep_shading` around it. RGB uint8 (H, W, 3)."""
    shade = sweep_shading(width, height, horizon, wall_top, floor_near, hotspot, vignette)
    levels = shade[:, :, None] * np.asarray(color, dtype=np.float32)
    return quantise_smooth(levels, width, height)
