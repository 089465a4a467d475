"""A contact sheet: every preset x shadow type on one image, for judging the
look at a glance (and for the demo)."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from services.compositor.colors import RGB
from services.compositor.compose import ComposeSpec, compose
from services.compositor.layout import LayoutSpec
from services.compositor.presets import PRESETS, preset_background
from services.compositor.shadows import SHADOW_STYLES

# Colours for the presets that need some, so they can appear on the sheet.
SAMPLE_COLOURS: dict[str, tuple[RGB, ...]] = {
    "solid": ((31, 42, 68),),
    "gradient": ((255, 214, 186), (214, 196, 230)),
    "radial-gradient": ((255, 255, 255), (170, 170, 170)),
}
LABEL_HEIGHT = 22
SHEET_SCALE = 0.62
SHEET_Y = 52.0


def label(strip: np.ndarray, text: str) -> None:
    """Write `text` on an RGB uint8 strip, in place."""
    strip[:] = (32, 32, 32)
    cv2.putText(
        strip,
        text,
        (6, strip.shape[0] - 7),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.45,
        (235, 235, 235),
        1,
        cv2.LINE_AA,
    )


def make_contact_sheet(
    subjects: Sequence[np.ndarray],
    presets: Sequence[str] | None = None,
    shadows: Sequence[str] | None = None,
    cell: int = 320,
    seed: int = 0,
) -> np.ndarray:
    """Compose every preset (rows) with every shadow type (columns).

    subjects: RGBA uint8 (H, W, 4) cut-outs, used in turn across the cells;
    presets/shadows: names (default: all). Each cell is a square `cell` px
    composite, the subject a little smaller than the default so the shadows show,
    over a label strip "preset / shadow".
    Returns RGB uint8 (rows * (cell + LABEL_HEIGHT), columns * cell, 3)."""
    if not subjects:
        raise ValueError("make_contact_sheet needs at least one subject")
    presets = list(presets) if presets is not None else list(PRESETS)
    shadows = list(shadows) if shadows is not None else list(SHADOW_STYLES)
    row_h = cell + LABEL_HEIGHT
    sheet = np.empty((len(presets) * row_h, len(shadows) * cell, 3), dtype=np.uint8)
    layout = LayoutSpec(output_width=cell, output_height=cell, scale=SHEET_SCALE, y=SHEET_Y)
    for r, preset in enumerate(presets):
        background = preset_background(preset, SAMPLE_COLOURS.get(preset, ()))
        for c, shadow in enumerate(shadows):
            subject = subjects[(r * len(shadows) + c) % len(subjects)]
            spec = ComposeSpec(background, layout, SHADOW_STYLES[shadow], seed=seed)
            x0, y0 = c * cell, r * row_h
            sheet[y0 : y0 + cell, x0 : x0 + cell] = compose(subject, spec).pixels
            label(sheet[y0 + cell : y0 + row_h, x0 : x0 + cell], f"{preset} / {shadow}")
    return sheet
