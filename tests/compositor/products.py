"""Synthetic product cut-outs for compositor tests, the benchmark and the contact
sheet: RGBA uint8 (size, size, 4), shaded like lit objects, with anti-aliased
alpha (drawn at 4x and area-downsampled), deterministic."""

from __future__ import annotations

import cv2
import numpy as np

SUPERSAMPLE = 4


def _alpha(size: int, draw) -> np.ndarray:
    big = np.zeros((size * SUPERSAMPLE, size * SUPERSAMPLE), dtype=np.uint8)
    draw(big, SUPERSAMPLE)
    return cv2.resize(big, (size, size), interpolation=cv2.INTER_AREA)


def _cylinder_shading(size: int, x0: float, x1: float) -> np.ndarray:
    """float32 (size,) horizontal light falloff of a cylinder spanning x0..x1."""
    x = (np.arange(size, dtype=np.float32) + 0.5 - 0.5 * (x0 + x1)) / max(1.0, 0.5 * (x1 - x0))
    x = np.clip(x, -1.0, 1.0)
    lit = np.sqrt(1.0 - x * x) * 0.75 + 0.25
    highlight = np.exp(-(((x + 0.45) / 0.12) ** 2)) * 0.35
    return (lit + highlight).astype(np.float32)


def bottle(size: int = 512, colour: tuple[int, int, int] = (176, 64, 40)) -> np.ndarray:
    """An upright bottle with neck, cap and a striped label; base at 90 % height."""
    s = size
    bw, top, base = 0.24 * s, 0.22 * s, 0.9 * s
    cx = 0.5 * s

    def draw(img: np.ndarray, k: int) -> None:
        r = int(0.05 * s * k)
        x0, x1 = int((cx - bw / 2) * k), int((cx + bw / 2) * k)
        y0, y1 = int((top + 0.14 * s) * k), int(base * k)
        cv2.rectangle(img, (x0, y0 + r), (x1, y1 - r), 255, -1)
        cv2.rectangle(img, (x0 + r, y0), (x1 - r, y1), 255, -1)
        for cxx, cyy in ((x0 + r, y0 + r), (x1 - r, y0 + r), (x0 + r, y1 - r), (x1 - r, y1 - r)):
            cv2.circle(img, (cxx, cyy), r, 255, -1)
        nw = int(0.07 * s * k)
        cv2.rectangle(img, (int(cx * k) - nw, int(top * k)), (int(cx * k) + nw, y0 + r), 255, -1)

    alpha = _alpha(s, draw)
    shade = _cylinder_shading(s, cx - bw / 2, cx + bw / 2)[None, :, None]
    rgb = np.empty((s, s, 3), dtype=np.float32)
    rgb[:] = np.asarray(colour, dtype=np.float32)
    rows = np.arange(s)
    label = (rows > 0.5 * s) & (rows < 0.72 * s)
    rgb[label] = (235, 228, 210)
    stripes = label & ((rows // max(1, s // 64)) % 2 == 0) & (rows > 0.6 * s)
    rgb[stripes] = (30, 40, 90)
    cap = rows < top + 0.04 * s
    rgb[cap] = (40, 40, 44)
    rgb *= shade
    out = np.empty((s, s, 4), dtype=np.uint8)
    out[:, :, :3] = np.clip(rgb, 0, 255).astype(np.uint8)
    out[:, :, 3] = alpha
    return out


def box(size: int = 512, colour: tuple[int, int, int] = (40, 110, 170)) -> np.ndarray:
    """A wide carton seen from the front, lit from the left; base at 85 % height."""
    s = size

    def draw(img: np.ndarray, k: int) -> None:
        cv2.rectangle(
            img,
            (int(0.15 * s * k), int(0.45 * s * k)),
            (int(0.85 * s * k), int(0.85 * s * k)),
            255,
            -1,
        )

    alpha = _alpha(s, draw)
    x = np.linspace(1.1, 0.75, s, dtype=np.float32)[None, :, None]
    rgb = np.asarray(colour, dtype=np.float32) * x * np.ones((s, 1, 1), np.float32)
    rgb[int(0.55 * s) : int(0.6 * s), :] = (250, 250, 245)
    out = np.empty((s, s, 4), dtype=np.uint8)
    out[:, :, :3] = np.clip(rgb, 0, 255).astype(np.uint8)
    out[:, :, 3] = alpha
    return out


def jar(size: int = 512, colour: tuple[int, int, int] = (230, 226, 214)) -> np.ndarray:
    """A squat cosmetics jar with a gold lid; base at 80 % height."""
    s = size

    def draw(img: np.ndarray, k: int) -> None:
        cv2.rectangle(
            img, (int(0.3 * s * k), int(0.5 * s * k)), (int(0.7 * s * k), int(0.8 * s * k)), 255, -1
        )
        cv2.ellipse(
            img,
            (int(0.5 * s * k), int(0.8 * s * k)),
            (int(0.2 * s * k), int(0.025 * s * k)),
            0,
            0,
            180,
            255,
            -1,
        )
        cv2.rectangle(
            img,
            (int(0.32 * s * k), int(0.42 * s * k)),
            (int(0.68 * s * k), int(0.5 * s * k)),
            255,
            -1,
        )

    alpha = _alpha(s, draw)
    shade = _cylinder_shading(s, 0.3 * s, 0.7 * s)[None, :, None]
    rgb = np.empty((s, s, 3), dtype=np.float32)
    rgb[:] = np.asarray(colour, dtype=np.float32)
    rgb[: int(0.5 * s)] = (200, 160, 70)
    rgb *= shade
    out = np.empty((s, s, 4), dtype=np.uint8)
    out[:, :, :3] = np.clip(rgb, 0, 255).astype(np.uint8)
    out[:, :, 3] = alpha
    return out


def photographed(subject: np.ndarray, backdrop: tuple[int, int, int]) -> np.ndarray:
    """The subject as a camera saw it: RGB uint8 composited onto a plain backdrop,
    so soft edge pixels carry the backdrop's colour (what decontamination fixes)."""
    a = subject[:, :, 3:4].astype(np.float32) / 255.0
    rgb = subject[:, :, :3].astype(np.float32) * a + np.asarray(backdrop, np.float32) * (1 - a)
    return np.rint(rgb).astype(np.uint8)
