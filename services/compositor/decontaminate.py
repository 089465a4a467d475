"""Colour decontamination: estimate the true foreground colour where the alpha is
soft, so a product shot on grass keeps no green rim on its new background.

Method: blur-fusion foreground estimation (Forte & Pitié, "Approximate Fast
Foreground Colour Estimation", ICIP 2021): a large-radius pass finds the colours
of the nearby solid foreground and background, a small-radius pass refines them.
Two things make it fast:
- the large pass only produces smooth fields (blurred F and B), so it runs once
  on a copy downscaled LARGE_RADIUS / LOW_RES_RADIUS times and is upsampled;
- the small pass runs at full resolution only on tiles that hold soft alpha
  (0 < alpha < 255), with a halo of SMALL_RADIUS.
Pixels with alpha 255 are never written: opaque subject pixels stay bit-exact."""

from __future__ import annotations

import cv2
import numpy as np

# Small tiles hug the soft contour; much smaller and per-tile overhead dominates.
TILE = 128
LARGE_RADIUS = 90
SMALL_RADIUS = 6
# The large pass's radius after downscaling: big enough that the box filter still
# averages many pixels, small enough that the downscale pays off.
LOW_RES_RADIUS = 15
_EPS = np.float32(1e-5)


def _box(image: np.ndarray, radius: int) -> np.ndarray:
    out = cv2.blur(image, (2 * radius + 1, 2 * radius + 1))
    return out[:, :, None] if out.ndim == 2 else out


def _fuse(
    image: np.ndarray, fg: np.ndarray, bg: np.ndarray, alpha: np.ndarray, radius: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One blur-fusion step on float32 (H, W, 3) colours and (H, W, 1) alpha in
    0..1. Returns (foreground, blurred foreground, blurred background)."""
    blurred_a = _box(alpha, radius)
    blurred_f = _box(fg * alpha, radius) / (blurred_a + _EPS)
    blurred_b = _box(bg * (1.0 - alpha), radius) / ((1.0 - blurred_a) + _EPS)
    f = blurred_f + alpha * (image - alpha * blurred_f - (1.0 - alpha) * blurred_b)
    np.clip(f, 0.0, 1.0, out=f)
    return f, blurred_f, blurred_b


def _as_float(rgb: np.ndarray, alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    image = rgb.astype(np.float32) * np.float32(1 / 255)
    a = alpha.astype(np.float32)[:, :, None] * np.float32(1 / 255)
    return image, a


def estimate_foreground(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Foreground colour of a whole (small) image at full resolution, both passes.

    rgb: uint8 (H, W, 3); alpha: uint8 (H, W). Returns uint8 (H, W, 3)."""
    image, a = _as_float(rgb, alpha)
    f, _, b = _fuse(image, image, image, a, LARGE_RADIUS)
    f, _, _ = _fuse(image, f, b, a, SMALL_RADIUS)
    return np.rint(f * 255.0).astype(np.uint8)


def _upsample(
    field: np.ndarray, scale: tuple[float, float], x0: int, y0: int, w: int, h: int
) -> np.ndarray:
    """The (h, w) window at (x0, y0) of `field` upsampled by scale (sx, sy), with
    pixel centres aligned as cv2.resize(INTER_AREA) downsampled them."""
    sx, sy = scale
    matrix = np.float32([[sx, 0, 0.5 * sx - 0.5 - x0], [0, sy, 0.5 * sy - 0.5 - y0]])
    return cv2.warpAffine(
        field, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


def decontaminate(rgba: np.ndarray) -> np.ndarray:
    """RGBA uint8 (H, W, 4) -> a copy whose colour at soft alpha (0 < a < 255) is
    the estimated foreground colour. Alpha and opaque pixels are unchanged."""
    out = rgba.copy()
    alpha = cv2.extractChannel(rgba, 3)
    h, w = alpha.shape
    soft = cv2.inRange(alpha, 1, 254)
    ty, tx = -(-h // TILE), -(-w // TILE)
    padded = np.zeros((ty * TILE, tx * TILE), dtype=np.uint8)
    padded[:h, :w] = soft
    tiles = np.argwhere(padded.reshape(ty, TILE, tx, TILE).max(axis=(1, 3)) > 0)
    if tiles.size == 0:
        return out

    # Large pass, once, at low resolution: only its blurred F and B are kept.
    factor = max(1, LARGE_RADIUS // LOW_RES_RADIUS)
    lw, lh = max(1, round(w / factor)), max(1, round(h / factor))
    small = cv2.resize(rgba, (lw, lh), interpolation=cv2.INTER_AREA)
    image, a = _as_float(small[:, :, :3], small[:, :, 3])
    radius = max(1, round(LARGE_RADIUS / factor))
    _, blurred_f, blurred_b = _fuse(image, image, image, a, radius)
    scale = (w / lw, h / lh)

    for j, i in tiles:
        y0, x0 = j * TILE, i * TILE
        y1, x1 = min(y0 + TILE, h), min(x0 + TILE, w)
        hy0, hx0 = max(0, y0 - SMALL_RADIUS), max(0, x0 - SMALL_RADIUS)
        hy1, hx1 = min(h, y1 + SMALL_RADIUS), min(w, x1 + SMALL_RADIUS)
        tw, th = hx1 - hx0, hy1 - hy0
        image, a = _as_float(rgba[hy0:hy1, hx0:hx1, :3], alpha[hy0:hy1, hx0:hx1])
        bf = _upsample(blurred_f, scale, hx0, hy0, tw, th)
        bb = _upsample(blurred_b, scale, hx0, hy0, tw, th)
        f = bf + a * (image - a * bf - (1.0 - a) * bb)
        np.clip(f, 0.0, 1.0, out=f)
        f, _, _ = _fuse(image, f, bb, a, SMALL_RADIUS)
        fg = np.rint(f[y0 - hy0 : y1 - hy0, x0 - hx0 : x1 - hx0] * 255.0).astype(np.uint8)
        write = (alpha[y0:y1, x0:x1] != 255)[:, :, None]
        np.copyto(out[y0:y1, x0:x1, :3], fg, where=write)
    return out
