"""Embedded object removal: OpenCV's Telea inpainting over padded crops of the mask.

No weights: this serves `remove-object` with a mask when LaMa is not deployed, and the
job says so (engines: {"inpaint": "telea"}). Telea propagates the colours around the
hole inwards; it fills small and thin objects convincingly and large ones with a smooth
smear.

Each connected group of mask regions is filled in its own crop (the mask's bounding box
plus context), so cost follows the mask, not the photo. Crops larger than
`work_long_side` are filled at reduced size and upsampled; only masked pixels change.

Arrays: image uint8 HxWx3 RGB, mask uint8 HxW (>= 128 = remove); result uint8 HxWx3.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np


class InpaintInputError(ValueError):
    """The request cannot be served (bad shapes, too large); the caller's fault."""


@dataclass(frozen=True)
class TeleaParams:
    """Knobs; the model reads them from config.pbtxt `parameters`."""

    # Telea's neighbourhood radius, in work-resolution pixels.
    radius: int = 5
    # The mask is grown by this many pixels: a hand-drawn or segmented mask stops at the
    # object's edge, and its anti-aliased rim would otherwise bleed into the fill.
    mask_dilate_px: int = 3
    # Context kept around each mask region, in pixels and as a fraction of the
    # region's size (whichever is larger).
    pad_px: int = 32
    pad_frac: float = 0.25
    # Crops whose long side exceeds this are filled at reduced size.
    work_long_side: int = 1024
    # The fill is blended into the photo over this many pixels at the mask's edge.
    feather_px: int = 2
    # Input limits.
    min_side: int = 1
    max_pixels: int = 40_000_000


_FIELDS = {f.name: f for f in dataclasses.fields(TeleaParams)}


def parse_params(raw: dict[str, str]) -> TeleaParams:
    """TeleaParams from config.pbtxt strings; unknown keys and bad values raise."""
    unknown = sorted(set(raw) - set(_FIELDS))
    if unknown:
        raise ValueError(f"unknown inpaint_telea parameters {unknown}; known: {sorted(_FIELDS)}")
    values: dict[str, Any] = {}
    for key, text in raw.items():
        kind = _FIELDS[key].type
        try:
            value: Any = int(text) if kind == "int" else float(text)
        except ValueError as exc:
            raise ValueError(f"inpaint_telea parameter {key}={text!r} is not a {kind}") from exc
        if value < 0 or (isinstance(value, float) and not math.isfinite(value)):
            raise ValueError(f"inpaint_telea parameter {key}={text!r} must be >= 0")
        values[key] = value
    params = TeleaParams(**values)
    if params.radius < 1 or params.work_long_side < 64 or params.min_side < 1:
        raise ValueError("radius must be >= 1, work_long_side >= 64, min_side >= 1")
    return params


def check_request(image: np.ndarray, mask: np.ndarray, params: TeleaParams) -> None:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise InpaintInputError(
            f"IMAGE must be uint8 HxWx3 RGB, got {image.dtype} {list(image.shape)}"
        )
    if mask.dtype != np.uint8 or mask.shape != image.shape[:2]:
        raise InpaintInputError(
            f"MASK must be uint8 HxW at the image's size {list(image.shape[:2])}, "
            f"got {mask.dtype} {list(mask.shape)}"
        )
    h, w = mask.shape
    if min(h, w) < params.min_side or h * w > params.max_pixels:
        raise InpaintInputError(
            f"IMAGE is {w}x{h}; sides must be >= {params.min_side} and the area "
            f"<= {params.max_pixels} pixels"
        )


def mask_regions(mask: np.ndarray, pad_px: int, pad_frac: float) -> list[tuple[int, int, int, int]]:
    """Crop boxes (x0, y0, x1, y1), exclusive ends, covering every True pixel of `mask`
    with context: each connected region's bounding box grown by max(pad_px, pad_frac x
    its long side), clipped to the image, and boxes that overlap merged."""
    h, w = mask.shape
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    boxes = []
    for i in range(1, count):
        x, y, bw, bh = (int(v) for v in stats[i, :4])
        pad = max(pad_px, int(math.ceil(pad_frac * max(bw, bh))))
        boxes.append([max(0, x - pad), max(0, y - pad), min(w, x + bw + pad), min(h, y + bh + pad)])
    merged = True
    while merged:
        merged = False
        out: list[list[int]] = []
        for box in boxes:
            for other in out:
                if (
                    box[0] < other[2]
                    and other[0] < box[2]
                    and box[1] < other[3]
                    and other[1] < box[3]
                ):
                    other[:] = [
                        min(box[0], other[0]),
                        min(box[1], other[1]),
                        max(box[2], other[2]),
                        max(box[3], other[3]),
                    ]
                    merged = True
                    break
            else:
                out.append(box)
        boxes = out
    return [(b[0], b[1], b[2], b[3]) for b in boxes]


def _fill_crop(crop: np.ndarray, hole: np.ndarray, params: TeleaParams) -> np.ndarray:
    h, w = hole.shape
    long_side = max(h, w)
    if long_side <= params.work_long_side:
        return cv2.inpaint(crop, hole.astype(np.uint8) * 255, params.radius, cv2.INPAINT_TELEA)
    f = params.work_long_side / long_side
    size = (max(1, round(w * f)), max(1, round(h * f)))
    small = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
    # Any hole pixel in a work pixel makes it a hole: the fill must not sample the object.
    small_hole = cv2.resize(hole.astype(np.uint8) * 255, size, interpolation=cv2.INTER_AREA) > 0
    filled = cv2.inpaint(small, small_hole.astype(np.uint8) * 255, params.radius, cv2.INPAINT_TELEA)
    return cv2.resize(filled, (w, h), interpolation=cv2.INTER_CUBIC)


def blend_fill(
    image: np.ndarray, fill: np.ndarray, hole: np.ndarray, feather_px: int
) -> np.ndarray:
    """`image` with `fill` inside `hole` (bool HxW), blended over `feather_px` pixels
    outside the hole's edge; pixels farther out are `image`'s, bit for bit."""
    if feather_px <= 0:
        weight = hole.astype(np.float32)
    else:
        # Distance outside the hole, in pixels; 1 inside, fading to 0 at feather_px.
        outside = cv2.distanceTransform((~hole).astype(np.uint8), cv2.DIST_L2, 3)
        weight = np.clip(1.0 - outside / float(feather_px + 1), 0.0, 1.0)
    weight = weight[..., None]
    out = image.astype(np.float32) * (1.0 - weight) + fill.astype(np.float32) * weight
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def inpaint(image: np.ndarray, mask: np.ndarray, params: TeleaParams) -> np.ndarray:
    """`image` with the pixels under `mask` (>= 128) filled from their surroundings.
    An empty mask returns a copy of `image`."""
    check_request(image, mask, params)
    hole = mask >= 128
    if params.mask_dilate_px > 0 and hole.any():
        k = 2 * params.mask_dilate_px + 1
        hole = (
            cv2.dilate(hole.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
            > 0
        )
    out = image.copy()
    for x0, y0, x1, y1 in mask_regions(hole, params.pad_px, params.pad_frac):
        crop_hole = hole[y0:y1, x0:x1]
        crop = out[y0:y1, x0:x1]
        fill = _fill_crop(np.ascontiguousarray(crop), crop_hole, params)
        out[y0:y1, x0:x1] = blend_fill(crop, fill, crop_hole, params.feather_px)
    return out
