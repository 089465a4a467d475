"""A drawn person for the try-on tests: a photo and its matte with known body rows."""

from __future__ import annotations

import cv2
import numpy as np

HEAD_TOP, CHIN, NECK, HIPS, ANKLES = 25, 95, 100, 300, 560


def synthetic_person(width: int = 300, height: int = 600) -> tuple[np.ndarray, np.ndarray]:
    """A standing figure, front view: (photo uint8 HxWx3, matte uint8 HxW). Head
    rows 25..95, neck to 110, torso and arms to 300, legs to 560."""
    alpha = np.zeros((height, width), np.uint8)
    cx = width // 2
    cv2.ellipse(alpha, (cx, 60), (30, 35), 0, 0, 360, 255, -1)
    alpha[90 : NECK + 10, cx - 14 : cx + 14] = 255
    alpha[NECK + 10 : HIPS, cx - 60 : cx + 60] = 255  # torso
    alpha[NECK + 14 : HIPS - 10, cx - 80 : cx - 62] = 255  # arms, apart from the torso
    alpha[NECK + 14 : HIPS - 10, cx + 62 : cx + 80] = 255
    alpha[NECK + 10 : NECK + 30, cx - 80 : cx + 80] = 255  # shoulders joining them
    alpha[HIPS:ANKLES, cx - 50 : cx - 5] = 255  # legs
    alpha[HIPS:ANKLES, cx + 5 : cx + 50] = 255
    rng = np.random.default_rng(0)
    backdrop = np.full((height, width, 3), (200, 210, 190), np.float32)
    figure = np.full((height, width, 3), (120, 80, 60), np.float32)
    photo = np.where(alpha[..., None] > 0, figure, backdrop) + rng.normal(0, 6, (height, width, 3))
    return photo.clip(0, 255).astype(np.uint8), alpha
