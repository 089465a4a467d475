"""Detail transfer: the source's high frequencies re-applied with a blend mode."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from services.compositor.detail import transfer_detail
from services.compositor.layout import premultiply


def textured(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[..., :3] = rng.integers(60, 200, (64, 64, 3), dtype=np.uint8)
    rgba[8:56, 8:56, 3] = 255
    return rgba


def test_add_with_the_subject_as_source_gives_the_subject_back() -> None:
    rgba = textured()
    placed = premultiply(rgba)
    out = transfer_detail(placed, rgba[..., :3], "add", 3.0)
    inner = rgba[..., 3] == 255
    assert np.abs(out[inner].astype(int) - placed[inner].astype(int)).max() <= 1
    assert np.array_equal(out[..., 3], placed[..., 3])


@pytest.mark.parametrize("mode", ["add", "overlay", "soft_light", "hard_light"])
def test_flat_source_adds_nothing(mode: str) -> None:
    rgba = textured()
    placed = premultiply(rgba)
    flat = np.full((64, 64, 3), 128, np.uint8)
    out = transfer_detail(placed, flat, mode, 3.0).astype(int)
    # With no detail in the source the result is the subject's own low-pass.
    lowpass = cv2.GaussianBlur(placed[..., :3].astype(np.float32), (0, 0), 3.0)
    centre = (slice(20, 44), slice(20, 44))
    assert np.abs(out[centre][..., :3] - lowpass[centre]).max() <= 2


def test_soft_light_restores_detail_onto_a_blurred_subject() -> None:
    rgba = textured()
    blurred = rgba.copy()
    blurred[..., :3] = cv2.GaussianBlur(rgba[..., :3], (0, 0), 2.0)
    out = transfer_detail(premultiply(blurred), rgba[..., :3], "soft_light", 3.0)
    centre = (slice(20, 44), slice(20, 44))
    detail_in = np.abs(np.diff(blurred[centre][..., 0].astype(int), axis=1)).mean()
    detail_out = np.abs(np.diff(out[centre][..., 0].astype(int), axis=1)).mean()
    assert detail_out > 2 * detail_in
