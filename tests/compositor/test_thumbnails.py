"""The studio's preset thumbnails: one per compositor preset, and each still what
the compositor draws (regenerate with `python -m services.compositor.thumbnails`)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from services.compositor.presets import PRESETS
from services.compositor.thumbnails import THUMB_DIR, THUMB_SIZE, preset_thumbnail


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


def test_one_thumbnail_per_preset() -> None:
    assert {p.stem for p in THUMB_DIR.glob("*.webp")} == set(PRESETS)


def test_thumbnails_match_the_compositor() -> None:
    for name in PRESETS:
        shipped = np.asarray(Image.open(THUMB_DIR / f"{name}.webp").convert("RGB"))
        fresh = preset_thumbnail(name)
        assert shipped.shape == fresh.shape == (THUMB_SIZE, THUMB_SIZE, 3)
        # WebP at quality 82 loses a little; a changed preset or layout loses far more.
        assert psnr(shipped, fresh) > 30, f"{name}: regenerate the thumbnails"
