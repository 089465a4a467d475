"""BiRefNet's logits back to an alpha matte at the photo's full resolution.

The network sees the photo at 1024 x 1024; upsampling its matte to a 4K photo would
smear every edge over ~4 pixels. Instead a fast guided filter (He & Sun, 2015) fits,
at the work resolution, a local linear model alpha ~ A . rgb + b in every window,
upsamples A and b, and applies them to the full-resolution photo: edges land where the
photo's edges are. The refined values replace the upsampled matte only in a band
around its uncertain pixels, so solid subject and clear backdrop stay exactly 255 / 0.

Full-resolution work runs in strips of `strip_rows` rows (bounded memory).

Arrays: logits float32 [1, 1, S, S]; image uint8 HxWx3 RGB; alpha uint8 HxW out.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


class MattingInputError(ValueError):
    """The request cannot be served; the caller's fault."""


@dataclass(frozen=True)
class PostParams:
    """Knobs; the model reads them from config.pbtxt `parameters`."""

    # Guided filter window radius, in work-resolution pixels, and its regulariser
    # (colour variance units, rgb in [0, 1]): smaller follows the photo more closely.
    guide_radius: int = 3
    guide_eps: float = 1e-3
    # The refinement applies within this many work pixels of an uncertain matte pixel
    # (0.02 < alpha < 0.98).
    band_px: int = 3
    # Full-resolution rows per strip.
    strip_rows: int = 512


def sigmoid(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-np.clip(x, -60.0, 60.0)))).astype(np.float32)


def guided_coefficients(
    guide: np.ndarray, p: np.ndarray, radius: int, eps: float
) -> tuple[np.ndarray, np.ndarray]:
    """Colour guided filter coefficients (mean A: HxWx3, mean b: HxW) of `p` (HxW
    float32) against `guide` (HxWx3 float32 in [0, 1])."""
    k = (2 * radius + 1, 2 * radius + 1)

    def box(x: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(x, -1, k, borderType=cv2.BORDER_REFLECT)

    mean_i = box(guide)
    mean_p = box(p)
    cov_ip = box(guide * p[..., None]) - mean_i * mean_p[..., None]

    # 3x3 covariance of the guide per pixel, regularised, solved in closed form (the
    # symmetric adjugate): a batched LAPACK solve is ~10x slower at a megapixel.
    def cov(i: int, j: int) -> np.ndarray:
        return box(guide[..., i] * guide[..., j]) - mean_i[..., i] * mean_i[..., j]

    e = np.float32(eps)
    rr, rg, rb = cov(0, 0) + e, cov(0, 1), cov(0, 2)
    gg, gb, bb = cov(1, 1) + e, cov(1, 2), cov(2, 2) + e
    inv_rr = gg * bb - gb * gb
    inv_rg = gb * rb - rg * bb
    inv_rb = rg * gb - gg * rb
    inv_gg = rr * bb - rb * rb
    inv_gb = rb * rg - rr * gb
    inv_bb = rr * gg - rg * rg
    det = rr * inv_rr + rg * inv_rg + rb * inv_rb
    c0, c1, c2 = cov_ip[..., 0], cov_ip[..., 1], cov_ip[..., 2]
    a = (
        np.stack(
            [
                inv_rr * c0 + inv_rg * c1 + inv_rb * c2,
                inv_rg * c0 + inv_gg * c1 + inv_gb * c2,
                inv_rb * c0 + inv_gb * c1 + inv_bb * c2,
            ],
            axis=2,
        )
        / det[..., None]
    )
    b = mean_p - (a * mean_i).sum(axis=2)
    return box(a), box(b)


def _rows_map(size_out: int, size_in: int, lo: int, hi: int) -> np.ndarray:
    """Source coordinates (half-pixel centres, as cv2.resize INTER_LINEAR) of output
    positions lo..hi-1 along one axis."""
    pos = (np.arange(lo, hi, dtype=np.float32) + 0.5) * (size_in / size_out) - 0.5
    return np.clip(pos, 0, size_in - 1)


def upsample_strip(low: np.ndarray, height: int, width: int, r0: int, r1: int) -> np.ndarray:
    """Rows r0..r1-1 of `low` resized bilinearly to height x width, without making
    the whole resized array."""
    ys = _rows_map(height, low.shape[0], r0, r1)
    xs = _rows_map(width, low.shape[1], 0, width)
    map_x = np.broadcast_to(xs[None, :], (r1 - r0, width))
    map_y = np.broadcast_to(ys[:, None], (r1 - r0, width))
    return cv2.remap(
        low,
        np.ascontiguousarray(map_x),
        np.ascontiguousarray(map_y),
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )


def postprocess(logits: np.ndarray, image: np.ndarray, params: PostParams) -> np.ndarray:
    """Alpha (uint8 HxW) for `image` from BiRefNet's `logits` [1, 1, S, S]."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise MattingInputError(
            f"IMAGE must be uint8 HxWx3 RGB, got {image.dtype} {list(image.shape)}"
        )
    if logits.ndim != 4 or logits.shape[:2] != (1, 1) or logits.shape[2] != logits.shape[3]:
        raise MattingInputError(f"LOGITS must be [1, 1, S, S], got {list(logits.shape)}")
    s = logits.shape[2]
    h, w = image.shape[:2]
    p = sigmoid(logits[0, 0].astype(np.float32))
    small = cv2.resize(
        image, (s, s), interpolation=cv2.INTER_AREA if h * w > s * s else cv2.INTER_LINEAR
    )
    guide = small.astype(np.float32) * np.float32(1 / 255.0)
    a, b = guided_coefficients(guide, p, params.guide_radius, params.guide_eps)
    uncertain = ((p > 0.02) & (p < 0.98)).astype(np.uint8)
    if params.band_px > 0:
        k = 2 * params.band_px + 1
        uncertain = cv2.dilate(uncertain, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    band = uncertain.astype(np.float32)
    low = np.dstack([a, b, p, band])  # S x S x 6: A (3), b, p, band
    alpha = np.empty((h, w), np.uint8)
    for r0 in range(0, h, params.strip_rows):
        r1 = min(h, r0 + params.strip_rows)
        up = upsample_strip(low, h, w, r0, r1)
        rgb = image[r0:r1].astype(np.float32) * np.float32(1 / 255.0)
        refined = (up[..., :3] * rgb).sum(axis=2) + up[..., 3]
        out = np.where(up[..., 5] > 0, refined, up[..., 4])
        alpha[r0:r1] = (np.clip(out, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return alpha
