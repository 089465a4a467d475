"""Cut-outs: the subject alone, as transparent RGBA, flattened on a colour,
trimmed to its alpha box, or just its mask."""

from __future__ import annotations

import numpy as np

from services.common.errors import InvalidParameter
from services.compositor.backgrounds import solid
from services.compositor.blend import over
from services.compositor.colors import parse_hex
from services.compositor.decontaminate import decontaminate
from services.compositor.layout import alpha_box, premultiply


def cutout(
    subject: np.ndarray, crop: bool = False, bg_color: str = "", mask_only: bool = False
) -> np.ndarray:
    """subject: RGBA uint8 (H, W, 4). Returns uint8 pixels:

    - mask_only: the alpha as greyscale (H, W);
    - bg_color "#RRGGBB": RGB (H, W, 3) flattened onto that colour;
    - otherwise RGBA (H, W, 4) with the colour at soft edges decontaminated.

    crop trims to the box of alpha > 0 first (nothing visible is cut)."""
    if subject.ndim != 3 or subject.shape[2] != 4:
        raise InvalidParameter("subject", f"the subject must be RGBA, got shape {subject.shape}")
    colour = None
    if bg_color.strip():
        colour = parse_hex(bg_color)
        if colour is None:
            raise InvalidParameter("bg_color", f"bg_color {bg_color!r} is not #RRGGBB")
        if mask_only:
            raise InvalidParameter("bg_color", "mask_only returns the alpha alone; drop bg_color")
    if crop:
        box = alpha_box(np.ascontiguousarray(subject[:, :, 3]))
        if box is None:
            raise InvalidParameter("crop", "the subject's alpha is empty: nothing to crop to")
        x0, y0, x1, y1 = box
        subject = subject[y0:y1, x0:x1]
    if mask_only:
        return np.ascontiguousarray(subject[:, :, 3])
    clean = decontaminate(subject)
    if colour is None:
        return clean
    canvas = solid(clean.shape[1], clean.shape[0], colour)
    over(canvas, premultiply(clean))
    return canvas


def cutout_alpha(subject: np.ndarray, crop: bool = False) -> np.ndarray:
    """Where the subject is in `cutout`'s result: its alpha (H, W), trimmed as `crop`
    trims. For image QA."""
    alpha = np.ascontiguousarray(subject[:, :, 3])
    if crop:
        box = alpha_box(alpha)
        if box is not None:
            x0, y0, x1, y1 = box
            return np.ascontiguousarray(alpha[y0:y1, x0:x1])
    return alpha
