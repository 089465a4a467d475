"""preserve_shadow: find the cast shadow already in the original photo, so that
replace-background can lay the same shadow on the new scene.

The shadow is measured as a ratio: how much darker the backdrop near the subject
is than the clean backdrop would be there. The clean backdrop is an upper
envelope of the photo with the subject filled in (grey dilation, then blur), so
slow lighting falloff is not mistaken for shadow. Everything runs on a copy whose
long side is WORK_SIDE pixels; shadows are soft, so nothing visible is lost.

On a textured backdrop (a wooden table, tiles, a flag behind a portrait) darkening
cannot be told from the pattern itself: measured as that shadow, the old backdrop's
stripes and grain would be printed onto the new scene. There no shadow is preserved:
the backdrop's fine detail (its high-pass energy around the subject, relative to its
brightness) must stay under TEXTURE_LIMIT. Measured on the sample photos: paper and
dark sweeps 0.002-0.013; tiles, a kitchen counter, the astronaut's flag 0.024-0.025;
wood 0.073."""

from __future__ import annotations

import cv2
import numpy as np

from services.compositor.layout import alpha_box
from services.compositor.shadows import ShadowLayer

WORK_SIDE = 512
# Darkening below this share is backdrop texture or noise, not shadow.
THRESHOLD = 0.04
# Estimated darkness below this (after weighting) is dropped entirely.
FLOOR = 0.015
# The envelope window and the reach of the shadow, as shares of the subject's extent.
ENVELOPE = 0.5
REACH = 0.75
# Above this fine-detail level around the subject the backdrop is textured (see above).
TEXTURE_LIMIT = 0.015


def backdrop_texture(luma: np.ndarray, subject: np.ndarray) -> float:
    """Fine detail of the backdrop: mean |luma - blurred luma| outside `subject`
    (uint8 mask, grown by a pixel so its edge does not count), over the mean luma
    there. luma: uint8 (h, w)."""
    backdrop = cv2.dilate(subject, np.ones((3, 3), np.uint8)) == 0
    if not backdrop.any():
        return 0.0
    y = luma.astype(np.float32)
    detail = np.abs(y - cv2.GaussianBlur(y, (0, 0), 2.0))
    return float(detail[backdrop].mean() / max(1.0, float(y[backdrop].mean())))


def estimate_cast_shadow(source: np.ndarray, alpha: np.ndarray) -> ShadowLayer | None:
    """The cast shadow in `source` as a darkness layer covering the whole image.

    source: RGB uint8 (H, W, 3), the original photo; alpha: uint8 (H, W), the
    subject. Darkness 255 * (1 - shaded / clean) near the subject, continued
    under its soft edges. None when there is no subject, or when the backdrop is
    too textured to tell a shadow from its pattern."""
    h, w = alpha.shape
    box = alpha_box(alpha)
    if box is None:
        return None
    f = max(1.0, max(h, w) / WORK_SIDE)
    sw, sh = max(8, round(w / f)), max(8, round(h / f))
    luma = cv2.cvtColor(
        cv2.resize(source, (sw, sh), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY
    )
    a = cv2.resize(alpha, (sw, sh), interpolation=cv2.INTER_AREA)
    subject = cv2.dilate((a > 4).astype(np.uint8), np.ones((3, 3), np.uint8), iterations=2)
    extent = max(box[2] - box[0], box[3] - box[1]) / f
    if backdrop_texture(luma, subject) > TEXTURE_LIMIT:
        return None

    filled = cv2.inpaint(luma, subject, 3, cv2.INPAINT_TELEA)
    k = max(3, int(ENVELOPE * extent) | 1)
    envelope = cv2.dilate(filled, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    clean = cv2.GaussianBlur(envelope.astype(np.float32), (0, 0), k / 3.0)
    shaded = cv2.GaussianBlur(filled.astype(np.float32), (0, 0), 1.5)
    darkening = 1.0 - shaded / np.maximum(clean, np.maximum(shaded, 1.0))
    darkening = np.clip((darkening - THRESHOLD) / (1.0 - THRESHOLD), 0.0, 1.0)

    distance = cv2.distanceTransform((subject == 0).astype(np.uint8), cv2.DIST_L2, 5)
    darkening *= np.clip(1.0 - distance / (REACH * extent), 0.0, 1.0)
    darkening = cv2.GaussianBlur(darkening, (0, 0), 1.0)
    # Faint leftovers would put 254s on a pure white background; drop them.
    darkening = np.clip((darkening - FLOOR) / (1.0 - FLOOR), 0.0, 1.0)
    darkness = cv2.resize(
        np.rint(darkening * 255.0).astype(np.uint8), (w, h), interpolation=cv2.INTER_LINEAR
    )
    return ShadowLayer(darkness, 0, 0)
