"""Colour decontamination: estimate the true foreground colour where the alpha is
soft, so a product shot on grass keeps no green rim on its new background.

Method: blur-fusion foreground estimation (Forte & Pitié, "Approximate Fast
Foreground Colour Estimation", ICIP 2021): a large-radius pass finds the colours
of the nearby solid foreground and background, a small-radius pass refines them.
Two things make it fast:
- the large pass only produces smooth fields (blurred F and B), so it runs once
  on a copy downscaled LARGE_RADIUS / LOW_RES_RADIUS times and is upsampled;
- the small pass runs at full resolution only on small tiles that hold soft
  alpha (0 < alpha < 255), with a halo of SMALL_RADIUS, stacked into one array.
Pixels with alpha 255 are never written: opaque subject pixels stay bit-exact."""

from __future__ import annotations

import cv2
import numpy as np

# Small tiles hug the soft contour (a 1-2 px anti-aliased edge wastes little);
# they are processed as one stack, so their number costs no Python overhead.
TILE = 32
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


def decontaminate(rgba: np.ndarray) -> np.ndarray:
    """RGBA uint8 (H, W, 4) -> RGBA uint8 (H, W, 4) whose colour at soft alpha
    (0 < a < 255) is the estimated foreground colour. Alpha and opaque pixels
    are unchanged. The result is a new array (possibly a row-strided view of one)."""
    alpha = cv2.extractChannel(rgba, 3)
    h, w = alpha.shape
    ty, tx = -(-h // TILE), -(-w // TILE)
    soft = np.zeros((ty * TILE, tx * TILE), dtype=np.uint8)
    soft[:h, :w] = cv2.inRange(alpha, 1, 254)
    # Which tiles hold soft alpha: reduce rows, then columns (fast, contiguous).
    per_tile = soft.reshape(ty, TILE, tx * TILE).max(axis=1).reshape(ty, tx, TILE).max(axis=2)
    tiles = np.argwhere(per_tile > 0)
    if tiles.size == 0:
        return rgba.copy()

    # Large pass, once, at low resolution: only its blurred F and B are kept. It
    # ends in a wide box filter, so plain bilinear subsampling is input enough.
    factor = max(1, LARGE_RADIUS // LOW_RES_RADIUS)
    lw, lh = max(1, round(w / factor)), max(1, round(h / factor))
    small = cv2.resize(rgba, (lw, lh), interpolation=cv2.INTER_LINEAR)
    image, a = _as_float(small[:, :, :3], small[:, :, 3])
    radius = max(1, round(LARGE_RADIUS / factor))
    _, blurred_f, blurred_b = _fuse(image, image, image, a, radius)

    # Small pass on the soft tiles only, all at once: each tile with its halo is
    # cut out and the windows are stacked into one tall image. A box filter of
    # SMALL_RADIUS reaches only into the halo, so tiles never see each other.
    r, size = SMALL_RADIUS, TILE + 2 * SMALL_RADIUS
    work = np.pad(rgba, ((r, ty * TILE - h + r), (r, tx * TILE - w + r), (0, 0)), mode="edge")
    offsets = np.arange(size)
    rows = (tiles[:, 0] * TILE)[:, None] + offsets  # (n, size), in `work` coordinates
    cols = (tiles[:, 1] * TILE)[:, None] + offsets
    windows = work[rows[:, :, None], cols[:, None, :]]  # (n, size, size, 4)
    n = len(tiles)
    stack_rgb, stack_a = _as_float(
        windows[..., :3].reshape(n * size, size, 3), windows[..., 3].reshape(n * size, size)
    )
    # Where each window pixel sits in the low-resolution fields.
    sx, sy = w / lw, h / lh
    map_y = np.broadcast_to(((rows - r + 0.5) / sy - 0.5)[:, :, None], (n, size, size))
    map_x = np.broadcast_to(((cols - r + 0.5) / sx - 0.5)[:, None, :], (n, size, size))
    map_x = np.ascontiguousarray(map_x, dtype=np.float32).reshape(n * size, size)
    map_y = np.ascontiguousarray(map_y, dtype=np.float32).reshape(n * size, size)
    bf = cv2.remap(blurred_f, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    bb = cv2.remap(blurred_b, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    f = bf + stack_a * (stack_rgb - stack_a * bf - (1.0 - stack_a) * bb)
    np.clip(f, 0.0, 1.0, out=f)
    f, _, _ = _fuse(stack_rgb, f, bb, stack_a, r)
    fg = np.rint(f.reshape(n, size, size, 3)[:, r : r + TILE, r : r + TILE] * 255.0)

    # Scatter the tiles' interiors back, never over opaque pixels.
    inner = windows[:, r : r + TILE, r : r + TILE]
    opaque = inner[..., 3:4] == 255
    inner[..., :3] = np.where(opaque, inner[..., :3], fg.astype(np.uint8))
    work[rows[:, r : r + TILE, None], cols[:, None, r : r + TILE]] = inner
    return work[r : r + h, r : r + w]
