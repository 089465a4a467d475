"""Where the subject goes: canvas size, the subject's alpha box, its placed size
and position, and the resampled (premultiplied) subject pixels.

Coordinates are pixels, x right and y down; boxes are (x0, y0, x1, y1) with x1, y1
exclusive. Images are uint8 HWC, RGBA unless a name says otherwise."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import Enum

import cv2
import numpy as np

from services.common.errors import InvalidParameter

# Alpha at or below this (about 3 %) is matting noise, not subject, when trimming:
# stray specks must not stretch the box that scale and x/y refer to.
TRIM_ALPHA = 8
MIN_CANVAS_SIDE = 16
# Aspect ratios beyond 8:1 are banners, not product photos; they are refused.
MAX_ASPECT = 8.0

_ASPECT = re.compile(r"\s*(\d+(?:\.\d+)?)\s*[:x/]\s*(\d+(?:\.\d+)?)\s*(?:\(.*\))?\s*")

Box = tuple[int, int, int, int]


class Mode(Enum):
    PLACE = "place"
    KEEP = "keep"


@dataclass(frozen=True)
class LayoutSpec:
    """A validated layout request. Zero/None fields mean "use the default"."""

    mode: Mode = Mode.PLACE
    aspect: float | None = None  # width / height
    output_width: int = 0
    output_height: int = 0
    megapixel: float = 0.0
    scale: float = 0.8
    x: float = 50.0
    y: float = 55.0
    padding: float = 0.0


@dataclass(frozen=True)
class Placement:
    """The subject's box in its own image, and where (at what size) it lands."""

    canvas_width: int
    canvas_height: int
    box: Box  # in the subject image
    left: int  # on the canvas; may be negative or past the edge (the subject is cut)
    top: int
    width: int
    height: int

    @property
    def unscaled(self) -> bool:
        """True when the subject lands 1:1, so its pixels are copied, not resampled."""
        x0, y0, x1, y1 = self.box
        return self.width == x1 - x0 and self.height == y1 - y0


def parse_aspect_ratio(text: str, field: str = "layout.aspect_ratio") -> float | None:
    """Aspect ratio text such as "4:5", "8:5 (Cinematic View)" or "16x9" -> W/H; "" -> None."""
    if not text.strip():
        return None
    m = _ASPECT.fullmatch(text)
    if m is None:
        raise InvalidParameter(field, f"aspect ratio {text!r} is not W:H, e.g. 4:5 or 16:9")
    w, h = float(m.group(1)), float(m.group(2))
    if w <= 0 or h <= 0:
        raise InvalidParameter(field, f"aspect ratio {text!r} has a zero side")
    ratio = w / h
    if not 1.0 / MAX_ASPECT <= ratio <= MAX_ASPECT:
        raise InvalidParameter(field, f"aspect ratio {text!r} is beyond 1:8..8:1")
    return ratio


def alpha_box(alpha: np.ndarray, threshold: int = 0) -> Box | None:
    """Bounding box of alpha > threshold in a uint8 (H, W) alpha; None if empty."""
    mask = alpha if threshold == 0 else cv2.threshold(alpha, threshold, 255, cv2.THRESH_BINARY)[1]
    x, y, w, h = cv2.boundingRect(np.ascontiguousarray(mask))
    if w == 0 or h == 0:
        return None
    return (x, y, x + w, y + h)


def _check_side(value: int, field: str, max_side: int) -> None:
    if not MIN_CANVAS_SIDE <= value <= max_side:
        raise InvalidParameter(field, f"{value} px is outside {MIN_CANVAS_SIDE}..{max_side}")


def canvas_size(
    spec: LayoutSpec, input_width: int, input_height: int, max_side: int, default_long_side: int
) -> tuple[int, int]:
    """The PLACE canvas (width, height).

    Both output sides set: exactly that. One side set: the other from the aspect.
    megapixel > 0: that area at the aspect. Otherwise the input's long side, capped
    at `default_long_side`. The aspect is `spec.aspect` or the input's."""
    aspect = spec.aspect if spec.aspect is not None else input_width / input_height
    ow, oh = spec.output_width, spec.output_height
    if ow and oh:
        _check_side(ow, "layout.output_width", max_side)
        _check_side(oh, "layout.output_height", max_side)
        return ow, oh
    if ow:
        _check_side(ow, "layout.output_width", max_side)
        oh = max(1, round(ow / aspect))
        _check_side(oh, "layout.output_height", max_side)
        return ow, oh
    if oh:
        _check_side(oh, "layout.output_height", max_side)
        ow = max(1, round(oh * aspect))
        _check_side(ow, "layout.output_width", max_side)
        return ow, oh
    if spec.megapixel > 0:
        area = spec.megapixel * 1e6
        w, h = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
        if max(w, h) > max_side or min(w, h) < MIN_CANVAS_SIDE:
            raise InvalidParameter(
                "layout.megapixel",
                f"{spec.megapixel} MP at this aspect is {w}x{h}, outside "
                f"{MIN_CANVAS_SIDE}..{max_side} a side",
            )
        return w, h
    long_side = min(max(input_width, input_height), default_long_side)
    if aspect >= 1:
        w, h = long_side, max(MIN_CANVAS_SIDE, round(long_side / aspect))
    else:
        w, h = max(MIN_CANVAS_SIDE, round(long_side * aspect)), long_side
    return w, h


def place(spec: LayoutSpec, box: Box, canvas: tuple[int, int]) -> Placement:
    """Fit the subject box into the canvas: its longest side (relative to the
    canvas) is `scale` of the canvas, its centre at (x %, y %), with at least
    `padding` of each side as margin (padding shrinks and shifts, never grows)."""
    cw, ch = canvas
    x0, y0, x1, y1 = box
    bw, bh = x1 - x0, y1 - y0
    fit = min(cw / bw, ch / bh)
    s = spec.scale * fit
    if spec.padding > 0:
        s = min(s, (1 - 2 * spec.padding) * fit)
    width, height = max(1, round(bw * s)), max(1, round(bh * s))
    left = round(spec.x / 100.0 * cw - width / 2.0)
    top = round(spec.y / 100.0 * ch - height / 2.0)
    if spec.padding > 0:
        mx, my = round(spec.padding * cw), round(spec.padding * ch)
        left = min(max(left, mx), cw - mx - width)
        top = min(max(top, my), ch - my - height)
    return Placement(cw, ch, box, left, top, width, height)


def keep(box: Box, input_width: int, input_height: int) -> Placement:
    """KEEP mode: the canvas is the input, the subject stays where it was, 1:1."""
    x0, y0, x1, y1 = box
    return Placement(input_width, input_height, box, x0, y0, x1 - x0, y1 - y0)


def premultiply(rgba: np.ndarray) -> np.ndarray:
    """RGBA uint8 (H, W, 4) -> premultiplied RGBA uint8 (colour * alpha / 255,
    rounded). Where alpha is 255 the colour is unchanged, bit for bit."""
    alpha = cv2.extractChannel(rgba, 3)
    factors = cv2.merge([alpha, alpha, alpha, np.full_like(alpha, 255)])
    return cv2.multiply(rgba, factors, scale=1 / 255)


def render_subject(subject: np.ndarray, placement: Placement) -> np.ndarray:
    """The subject's box, premultiplied and resampled to the placed size:
    uint8 (placement.height, placement.width, 4). Unscaled placements copy.

    Resampling happens on premultiplied colour so transparent pixels' colours
    never bleed into the edge: INTER_AREA when shrinking, bicubic when growing."""
    x0, y0, x1, y1 = placement.box
    crop = premultiply(subject[y0:y1, x0:x1])
    if placement.unscaled:
        return crop
    shrinking = placement.width < (x1 - x0)
    interp = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    out = cv2.resize(crop, (placement.width, placement.height), interpolation=interp)
    if not shrinking:
        # Bicubic overshoot could push colour above alpha, i.e. brighter than white.
        alpha = cv2.extractChannel(out, 3)
        out = cv2.min(out, cv2.merge([alpha, alpha, alpha, np.full_like(alpha, 255)]))
    return out


def visible(placement: Placement) -> tuple[Box, Box] | None:
    """The part of the placed subject inside the canvas, as (canvas box, box within
    the placed subject); None if the subject lies wholly outside."""
    cx0 = max(placement.left, 0)
    cy0 = max(placement.top, 0)
    cx1 = min(placement.left + placement.width, placement.canvas_width)
    cy1 = min(placement.top + placement.height, placement.canvas_height)
    if cx0 >= cx1 or cy0 >= cy1:
        return None
    sx0, sy0 = cx0 - placement.left, cy0 - placement.top
    return (cx0, cy0, cx1, cy1), (sx0, sy0, sx0 + cx1 - cx0, sy0 + cy1 - cy0)
