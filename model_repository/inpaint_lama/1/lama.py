"""Object removal with LaMa over crops around the mask.

LaMa sees a `work_size` x `work_size` crop: each connected group of mask regions gets
its own crop (the regions' bounding box grown by `pad_frac` of its size, at least
`pad_px`, made square so the fill is not stretched), resized to the work size, filled,
resized back and blended into the photo over `feather_px` at the mask's edge. Pixels
away from the mask are the photo's own, bit for bit, and the cost follows the mask,
not the photo: a 24 MP photo with a small blemish runs one 512 px crop.

Arrays: image uint8 HxWx3 RGB, mask uint8 HxW (>= 128 = remove); result uint8 HxWx3.
The ONNX model (contract inpaint_lama_onnx): image float32 [N, 3, S, S] in [0, 1],
mask float32 [N, 1, S, S] (1 = fill) -> output float32 [N, 3, S, S] in [0, 255].
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

RunFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


class InpaintInputError(ValueError):
    """The request cannot be served (bad shapes, too large); the caller's fault."""


class ModelOutputError(RuntimeError):
    """The ONNX model answered with a shape the contract does not allow."""


@dataclass(frozen=True)
class LamaParams:
    """Knobs; the model reads them from config.pbtxt `parameters`."""

    # LaMa's input side (published exports are fixed at 512).
    work_size: int = 512
    # Context around each mask region: the larger of pad_px and pad_frac x its size.
    pad_px: int = 32
    pad_frac: float = 0.5
    # The mask is grown by this many pixels (a drawn or segmented mask stops at the
    # object's anti-aliased edge, which would otherwise bleed into the fill).
    mask_dilate_px: int = 5
    # Blend width at the edge of the (grown) mask.
    feather_px: int = 3
    # The model's output range: 255 for [0, 255] (published exports), 1 for [0, 1].
    output_scale: float = 255.0
    min_side: int = 1
    max_pixels: int = 40_000_000


def check_request(image: np.ndarray, mask: np.ndarray, params: LamaParams) -> None:
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


def _merge(boxes: list[list[int]]) -> list[list[int]]:
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
    return boxes


def crop_boxes(mask: np.ndarray, params: LamaParams) -> list[tuple[int, int, int, int]]:
    """Square-ish crops (x0, y0, x1, y1), exclusive ends, covering every True pixel of
    `mask` with context; overlapping crops merged."""
    h, w = mask.shape
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    boxes = []
    for i in range(1, count):
        x, y, bw, bh = (int(v) for v in stats[i, :4])
        pad = max(params.pad_px, int(math.ceil(params.pad_frac * max(bw, bh))))
        side = max(bw, bh) + 2 * pad
        cx, cy = x + bw / 2.0, y + bh / 2.0
        x0 = int(round(cx - side / 2.0))
        y0 = int(round(cy - side / 2.0))
        boxes.append([max(0, x0), max(0, y0), min(w, x0 + side), min(h, y0 + side)])
    return [(b[0], b[1], b[2], b[3]) for b in _merge(boxes)]


def blend_fill(
    image: np.ndarray, fill: np.ndarray, hole: np.ndarray, feather_px: int
) -> np.ndarray:
    """`image` with `fill` inside `hole` (bool HxW), blended over `feather_px` pixels
    outside the hole's edge; pixels farther out are `image`'s, bit for bit."""
    if feather_px <= 0:
        weight = hole.astype(np.float32)
    else:
        outside = cv2.distanceTransform((~hole).astype(np.uint8), cv2.DIST_L2, 3)
        weight = np.clip(1.0 - outside / float(feather_px + 1), 0.0, 1.0)
    weight = weight[..., None]
    out = image.astype(np.float32) * (1.0 - weight) + fill.astype(np.float32) * weight
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def inpaint(image: np.ndarray, mask: np.ndarray, run: RunFn, params: LamaParams) -> np.ndarray:
    """`image` with the pixels under `mask` (>= 128) filled by LaMa through `run`."""
    check_request(image, mask, params)
    hole = mask >= 128
    if params.mask_dilate_px > 0 and hole.any():
        k = 2 * params.mask_dilate_px + 1
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
        hole = cv2.dilate(hole.astype(np.uint8), kernel) > 0
    out = image.copy()
    s = params.work_size
    for x0, y0, x1, y1 in crop_boxes(hole, params):
        crop = out[y0:y1, x0:x1]
        crop_hole = hole[y0:y1, x0:x1]
        ch, cw = crop_hole.shape
        shrink = ch * cw > s * s
        small = cv2.resize(
            crop, (s, s), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC
        )
        # Any hole pixel under a work pixel makes it a hole: LaMa must not see the object.
        small_hole = (
            cv2.resize(crop_hole.astype(np.float32), (s, s), interpolation=cv2.INTER_AREA) > 0
        )
        x = small.astype(np.float32).transpose(2, 0, 1)[None] * np.float32(1 / 255.0)
        m = small_hole.astype(np.float32)[None, None]
        result = run(np.ascontiguousarray(x), np.ascontiguousarray(m))
        if result.shape != (1, 3, s, s):
            raise ModelOutputError(f"LaMa returned {list(result.shape)}; expected [1, 3, {s}, {s}]")
        filled = np.clip(result[0].transpose(1, 2, 0) * (255.0 / params.output_scale), 0, 255)
        fill = cv2.resize(filled.astype(np.float32), (cw, ch), interpolation=cv2.INTER_CUBIC)
        out[y0:y1, x0:x1] = blend_fill(crop, np.clip(fill, 0, 255), crop_hole, params.feather_px)
    return out
