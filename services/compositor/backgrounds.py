"""Geometric backgrounds drawn on the CPU: solid colours, linear and radial
gradients, and seamless studio sweeps.

Every function returns a new RGB uint8 array of shape (height, width, 3).
Gradients are quantised with an 8x8 ordered dither so that slow ramps at 2048 px
show no 8-bit banding (the dither is a fixed pattern: output is deterministic)."""

from __future__ import annotations

import math

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
    dtype=np.float32,
)
# Thresholds centred in each of the 64 cells, as fractions of one 8-bit step.
_DITHER = (_BAYER8 + 0.5) / 64.0


def _dither_tile(height: int, width: int) -> np.ndarray:
    """float32 (height, width) ordered-dither thresholds in [0, 1)."""
    reps = (-(-height // 8), -(-width // 8))
    return np.tile(_DITHER, reps)[:height, :width]


def quantise(levels: np.ndarray) -> np.ndarray:
    """float32 (H, W, C) values on the 0..255 scale -> uint8 with ordered dither.

    Modifies `levels` in place (it is scratch) and returns a new uint8 array."""
    h, w = levels.shape[:2]
    levels += _dither_tile(h, w)[:, :, None]
    np.clip(levels, 0.0, 255.0, out=levels)
    return levels.astype(np.uint8)


def solid(width: int, height: int, color: RGB) -> np.ndarray:
    """A uniform RGB uint8 (height, width, 3) canvas of `color`."""
    canvas = np.empty((height, width, 3), dtype=np.uint8)
    canvas[:] = np.asarray(color, dtype=np.uint8)
    return canvas


def ramp_between(t: np.ndarray, start: RGB, end: RGB) -> np.ndarray:
    """Per-pixel mix of two colours: t float32 (H, W) in 0..1 -> uint8 (H, W, 3)."""
    s = np.asarray(start, dtype=np.float32)
    d = np.asarray(end, dtype=np.float32) - s
    levels = t[:, :, None] * d + s
    return quantise(levels)


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
    xs = (np.arange(width, dtype=np.float32) - (width - 1) / 2.0) * (dx / (2 * half))
    ys = (np.arange(height, dtype=np.float32) - (height - 1) / 2.0) * (dy / (2 * half))
    t = ys[:, None] + xs[None, :] + np.float32(0.5)
    np.clip(t, 0.0, 1.0, out=t)
    return ramp_between(t, start, end)


def radial_distance(
    width: int, height: int, center: tuple[float, float], radius: float
) -> np.ndarray:
    """float32 (H, W): distance from `center` (fractions of width, height) divided by
    `radius` (a fraction of the canvas diagonal)."""
    scale = 1.0 / (radius * math.hypot(width, height))
    xs = (np.arange(width, dtype=np.float32) - center[0] * width) * scale
    ys = (np.arange(height, dtype=np.float32) - center[1] * height) * scale
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
    return ramp_between(t, inner, outer)


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
    """Light falloff of a seamless paper sweep, float32 (H, W), 1.0 = full light.

    The wall darkens towards the top, the curve at `horizon` (share of height) is
    brightest and blends into the floor with no visible line, the floor darkens a
    little towards the camera, a soft hotspot sits behind the subject and the
    corners fall off."""
    y = (np.arange(height, dtype=np.float32) + 0.5) / height
    wall = wall_top + (1.0 - wall_top) * smoothstep(0.0, horizon, y) ** 0.8
    floor = 1.0 + (floor_near - 1.0) * smoothstep(horizon, 1.0, y)
    blend = smoothstep(horizon - 0.12, horizon + 0.12, y)
    rows = wall * (1.0 - blend) + floor * blend
    r = radial_distance(width, height, (0.5, horizon - 0.1), 0.7)
    shade = rows[:, None] * (1.0 + hotspot * (1.0 - smoothstep(0.0, 0.6, r)))
    shade *= 1.0 - vignette * smoothstep(0.35, 1.05, r)
    return shade


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
    return quantise(levels)
