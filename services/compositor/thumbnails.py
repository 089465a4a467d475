"""Preset thumbnails for the web studio: one synthetic bottle on each preset with
a soft shadow, drawn by the same code that composes product photos.

The studio serves them as static files (services/gateway/static/presets/); they
are committed, and tests/compositor/test_thumbnails.py checks that every preset
has one and that it still matches what the compositor draws. Regenerate with
`python -m services.compositor.thumbnails`."""

from __future__ import annotations

import sys
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image

from services.compositor.contact_sheet import make_contact_sheet
from services.compositor.presets import PRESETS
from services.samples.synthetic import make_sample

THUMB_SIZE = 160
THUMB_DIR = Path(__file__).resolve().parents[1] / "gateway" / "static" / "presets"


@cache
def _bottle() -> np.ndarray:
    """RGBA uint8 (256, 256, 4): the synthetic bottle with its exact alpha."""
    sample = make_sample("bottle", "white", size=(256, 256))
    return np.dstack([sample.rgb, sample.alpha])


def preset_thumbnail(preset: str, size: int = THUMB_SIZE) -> np.ndarray:
    """RGB uint8 (size, size, 3): a bottle on `preset` with a soft shadow."""
    subject = _bottle()
    sheet = make_contact_sheet([subject], presets=[preset], shadows=["soft"], cell=size)
    return sheet[:size, :size]


def write_thumbnails(directory: Path = THUMB_DIR) -> list[Path]:
    """One `<preset>.webp` per preset into `directory`; returns the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in PRESETS:
        path = directory / f"{name}.webp"
        Image.fromarray(preset_thumbnail(name)).save(path, "WEBP", quality=82, method=6)
        paths.append(path)
    return paths


if __name__ == "__main__":
    for written in write_thumbnails(Path(sys.argv[1]) if len(sys.argv) > 1 else THUMB_DIR):
        print(written)
