"""Colour decontamination: no green rim from a grass backdrop, opaque pixels
and alpha untouched."""

from __future__ import annotations

import cv2
import numpy as np

from services.compositor.blend import over
from services.compositor.decontaminate import decontaminate, estimate_foreground
from services.compositor.layout import premultiply

from .products import bottle, photographed

GRASS = (70, 160, 60)


def shot_on_grass(size: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """(RGBA as a matting model returns it, the true RGBA): soft 3 px edges whose
    colour is mixed with the grass behind."""
    truth = bottle(size)
    truth[..., 3] = cv2.GaussianBlur(truth[..., 3], (0, 0), 3.0)
    return np.dstack([photographed(truth, GRASS), truth[..., 3]]), truth


def green_excess(rgb: np.ndarray, mask: np.ndarray) -> float:
    px = rgb[mask].astype(float)
    return float((px[:, 1] - (px[:, 0] + px[:, 2]) / 2).mean())


def on_white(rgba: np.ndarray) -> np.ndarray:
    canvas = np.full(rgba.shape[:2] + (3,), 255, np.uint8)
    over(canvas, premultiply(rgba))
    return canvas


def test_no_green_rim_on_white() -> None:
    shot, truth = shot_on_grass()
    edge = (shot[..., 3] > 20) & (shot[..., 3] < 235)
    before = green_excess(on_white(shot), edge)
    after = green_excess(on_white(decontaminate(shot)), edge)
    reference = green_excess(on_white(truth), edge)
    assert before > reference + 15  # the rim is there without decontamination
    assert abs(after - reference) < 0.35 * abs(before - reference)


def test_opaque_pixels_and_alpha_untouched() -> None:
    shot, _ = shot_on_grass(300)
    clean = decontaminate(shot)
    opaque = shot[..., 3] == 255
    assert np.array_equal(clean[opaque], shot[opaque])
    assert np.array_equal(clean[..., 3], shot[..., 3])


def test_hard_alpha_is_a_no_op() -> None:
    rgba = np.zeros((100, 100, 4), np.uint8)
    rgba[..., :3] = GRASS
    rgba[20:80, 20:80] = (200, 30, 30, 255)
    assert np.array_equal(decontaminate(rgba), rgba)


def test_tiled_fast_path_matches_the_full_estimator() -> None:
    shot, _ = shot_on_grass(300)
    fast = decontaminate(shot)[..., :3].astype(int)
    full = estimate_foreground(shot[..., :3], shot[..., 3]).astype(int)
    band = (shot[..., 3] > 0) & (shot[..., 3] < 255)
    assert np.abs(fast[band] - full[band]).mean() < 2.5
