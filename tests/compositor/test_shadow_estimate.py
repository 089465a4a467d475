"""preserve_shadow: the cast shadow already in the photo is found and laid on
the new background; lighting falloff and far-away texture are not."""

from __future__ import annotations

import cv2
import numpy as np

from services.compositor.compose import ComposeSpec, compose
from services.compositor.layout import LayoutSpec, Mode
from services.compositor.presets import Background
from services.compositor.shadow_estimate import estimate_cast_shadow

from .products import bottle


def scene_with_shadow(size: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """(source RGB, subject RGBA): a bottle on a grey backdrop that darkens
    gently towards the top, with a soft shadow to the bottle's right."""
    subject = bottle(size)
    rows = np.linspace(185, 215, size, dtype=np.float32)[:, None]
    backdrop = np.repeat(rows, size, axis=1)
    shadow = np.zeros((size, size), np.float32)
    cv2.ellipse(
        shadow,
        (int(0.62 * size), int(0.88 * size)),
        (int(0.16 * size), int(0.035 * size)),
        0,
        0,
        360,
        1.0,
        -1,
    )
    shadow = cv2.GaussianBlur(shadow, (0, 0), 0.01 * size)
    backdrop *= 1.0 - 0.45 * shadow
    a = subject[:, :, 3:4].astype(np.float32) / 255.0
    rgb = subject[:, :, :3] * a + backdrop[:, :, None] * (1.0 - a)
    return np.rint(rgb).astype(np.uint8), subject


def test_estimate_finds_the_shadow_and_nothing_far_away() -> None:
    source, subject = scene_with_shadow()
    layer = estimate_cast_shadow(source, subject[:, :, 3])
    assert layer is not None and layer.darkness.shape == (400, 400)
    d = layer.darkness.astype(int)
    in_shadow = d[352, 275]  # centre of the shadow, beside the bottle's base
    assert 255 * 0.3 < in_shadow < 255 * 0.6  # about the 45 % it darkens
    assert d[40, 40] == 0 and d[200, 380] == 0  # backdrop falloff is not shadow


def test_preserved_shadow_lands_on_the_new_background() -> None:
    source, subject = scene_with_shadow()
    spec = ComposeSpec(
        Background("white-studio"), LayoutSpec(mode=Mode.KEEP), None, preserve_shadow=True
    )
    out = compose(subject, spec, source=source).pixels.astype(int)
    assert out[352, 275].mean() < 180
    assert (out[:60] == 255).all()
    opaque = subject[:, :, 3] == 255
    assert np.array_equal(out[opaque], subject[:, :, :3][opaque])


def test_no_subject_no_shadow() -> None:
    source, _ = scene_with_shadow(64)
    assert estimate_cast_shadow(source, np.zeros((64, 64), np.uint8)) is None


def test_a_textured_backdrop_keeps_no_shadow() -> None:
    """Stripes behind the subject (a flag, planks) are not a shadow to carry over."""
    source, subject = scene_with_shadow()
    stripes = (np.arange(source.shape[1]) // 12 % 2 == 0)[None, :, None]
    textured = np.where(stripes, source, (source * 0.55).astype(np.uint8))
    a = subject[:, :, 3:4].astype(np.float32) / 255.0
    shot = np.rint(subject[:, :, :3] * a + textured * (1.0 - a)).astype(np.uint8)
    assert estimate_cast_shadow(shot, subject[:, :, 3]) is None
    assert estimate_cast_shadow(source, subject[:, :, 3]) is not None
