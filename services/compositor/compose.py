"""One product photo: subject + background + shadow + layout -> RGB pixels.

The order is the physical one: draw the background, darken it with the shadows,
then lay the (decontaminated, resampled) subject over it. Only the subject's
box and the shadows' regions are touched after the background is drawn."""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from services.common.errors import InvalidParameter
from services.compositor import decontaminate as decon
from services.compositor.blend import over
from services.compositor.detail import transfer_detail
from services.compositor.layout import (
    TRIM_ALPHA,
    LayoutSpec,
    Mode,
    Placement,
    alpha_box,
    canvas_size,
    keep,
    place,
    render_subject,
    visible,
)
from services.compositor.presets import Background, draw_background
from services.compositor.shadow_estimate import estimate_cast_shadow
from services.compositor.shadows import ShadowStyle, cast_shadows, darken, darkness_map


@dataclass(frozen=True)
class ComposeSpec:
    """Everything Compose needs besides the pixels, already validated."""

    background: Background
    layout: LayoutSpec
    shadow: ShadowStyle | None
    seed: int = 0
    shadow_opacity: float = 0.0  # 0 = the style's own
    preserve_shadow: bool = False
    detail_transfer: bool = False
    detailer_mode: str = "soft_light"
    decontaminate: bool = True
    detail_sigma: float = 3.0
    max_canvas_side: int = 4096
    default_long_side: int = 2048


@dataclass(frozen=True)
class Composed:
    pixels: np.ndarray  # RGB uint8 (H, W, 3)
    background_engine: str
    # For image QA, at the canvas's size: the subject's alpha where it landed, uint8
    # (H, W); and the darkness its cast shadows added (0 = none), None without one.
    alpha: np.ndarray | None = None
    shadow: np.ndarray | None = None


def cover(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scale an RGB uint8 image to cover (width, height) and centre-crop: no
    distortion, no borders. Returns RGB uint8 (height, width, 3)."""
    ih, iw = image.shape[:2]
    s = max(width / iw, height / ih)
    sw, sh = max(width, round(iw * s)), max(height, round(ih * s))
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC
    scaled = image if (sw, sh) == (iw, ih) else cv2.resize(image, (sw, sh), interpolation=interp)
    x0, y0 = (sw - width) // 2, (sh - height) // 2
    return np.ascontiguousarray(scaled[y0 : y0 + height, x0 : x0 + width])


def _placement(subject: np.ndarray, spec: ComposeSpec) -> Placement | None:
    h, w = subject.shape[:2]
    alpha = subject[:, :, 3]
    if spec.layout.mode is Mode.KEEP:
        box = alpha_box(alpha)
        return None if box is None else keep(box, w, h)
    box = alpha_box(alpha, TRIM_ALPHA)
    if box is None:
        raise InvalidParameter("subject", "the subject's alpha is empty: nothing to place")
    canvas = canvas_size(spec.layout, w, h, spec.max_canvas_side, spec.default_long_side)
    return place(spec.layout, box, canvas)


def _decontaminated(subject: np.ndarray, placement: Placement) -> tuple[np.ndarray, Placement]:
    """Decontaminate the subject box plus the halo the estimator reads; returns the
    region and the placement re-expressed in it."""
    h, w = subject.shape[:2]
    x0, y0, x1, y1 = placement.box
    halo = decon.LARGE_RADIUS + decon.SMALL_RADIUS
    rx0, ry0 = max(0, x0 - halo), max(0, y0 - halo)
    rx1, ry1 = min(w, x1 + halo), min(h, y1 + halo)
    region = decon.decontaminate(subject[ry0:ry1, rx0:rx1])
    return region, replace(placement, box=(x0 - rx0, y0 - ry0, x1 - rx0, y1 - ry0))


def _laid_out_source(source: np.ndarray, placement: Placement) -> np.ndarray:
    x0, y0, x1, y1 = placement.box
    crop = source[y0:y1, x0:x1]
    if placement.unscaled:
        return crop
    interp = cv2.INTER_AREA if placement.width < x1 - x0 else cv2.INTER_CUBIC
    return cv2.resize(crop, (placement.width, placement.height), interpolation=interp)


def unpremultiply(rgba: np.ndarray) -> np.ndarray:
    """Premultiplied RGBA uint8 -> straight RGBA uint8. Colour where alpha is 255
    is unchanged, bit for bit; fully transparent pixels become (0, 0, 0, 0)."""
    alpha = rgba[:, :, 3:4].astype(np.uint16)
    colour = rgba[:, :, :3].astype(np.uint16) * 255 + alpha // 2
    straight = np.where(alpha > 0, colour // np.maximum(alpha, 1), 0)
    out = np.empty_like(rgba)
    out[:, :, :3] = np.minimum(straight, 255)
    out[:, :, 3] = rgba[:, :, 3]
    return out


def place_subject(subject: np.ndarray, spec: ComposeSpec) -> np.ndarray:
    """subject: RGBA uint8 (H, W, 4). Returns the subject where `compose` would
    put it: straight RGBA uint8 (canvas_h, canvas_w, 4), transparent elsewhere.

    A floating shadow's lift is applied as in PLACE mode, and edge colours are
    decontaminated as compose does, so composing this canvas again in KEEP mode
    (decontamination off) with the same shadow gives the same picture."""
    if subject.ndim != 3 or subject.shape[2] != 4:
        raise InvalidParameter("subject", f"the subject must be RGBA, got shape {subject.shape}")
    placement = _placement(subject, spec)
    if placement is None:
        return np.zeros_like(subject)
    canvas = np.zeros((placement.canvas_height, placement.canvas_width, 4), np.uint8)
    if spec.shadow is not None and spec.layout.mode is Mode.PLACE:
        rise = round(spec.shadow.lift * max(placement.width, placement.height))
        placement = replace(placement, top=placement.top - rise)
    shown = visible(placement)
    if shown is not None:
        (cx0, cy0, cx1, cy1), (sx0, sy0, sx1, sy1) = shown
        region, local = subject, placement
        if spec.decontaminate:
            region, local = _decontaminated(subject, placement)
        placed = unpremultiply(render_subject(region, local))
        canvas[cy0:cy1, cx0:cx1] = placed[sy0:sy1, sx0:sx1]
    return canvas


def compose(
    subject: np.ndarray,
    spec: ComposeSpec,
    source: np.ndarray | None = None,
    background_image: np.ndarray | None = None,
) -> Composed:
    """subject: RGBA uint8 (H, W, 4) at the input's size; source: the original
    photo RGB uint8 (H, W, 3) (preserve_shadow needs it, detail transfer uses it
    if given); background_image: RGB uint8, any size, wins over the preset.

    Returns the composite RGB uint8 on the layout's canvas. Where alpha is 255
    and the placement is 1:1 (always in KEEP mode), the subject's pixels come out
    unchanged unless detail transfer was asked for."""
    if subject.ndim != 3 or subject.shape[2] != 4:
        raise InvalidParameter("subject", f"the subject must be RGBA, got shape {subject.shape}")
    if source is not None and source.shape[:2] != subject.shape[:2]:
        raise InvalidParameter(
            "source",
            f"source is {source.shape[1]}x{source.shape[0]}, the subject "
            f"{subject.shape[1]}x{subject.shape[0]}; they must match",
        )
    if spec.preserve_shadow and source is None:
        raise InvalidParameter("source", "preserve_shadow needs the original photo in `source`")
    if spec.preserve_shadow and spec.layout.mode is not Mode.KEEP:
        raise InvalidParameter("preserve_shadow", "preserve_shadow works in LAYOUT_MODE_KEEP only")

    h, w = subject.shape[:2]
    placement = _placement(subject, spec)
    if placement is None:
        cw, ch = w, h
    else:
        cw, ch = placement.canvas_width, placement.canvas_height

    if background_image is not None:
        canvas = cover(background_image, cw, ch)
        if not canvas.flags.writeable:
            # Already the canvas's size: a view of the caller's (read-only) buffer.
            canvas = canvas.copy()
        engine = "image"
    else:
        canvas = draw_background(spec.background, cw, ch, spec.seed)
        engine = spec.background.engine

    if spec.preserve_shadow and source is not None:
        found = estimate_cast_shadow(source, subject[:, :, 3])
        if found is not None:
            darken(canvas, found)
    if placement is None:
        return Composed(canvas, engine, np.zeros((ch, cw), np.uint8))

    region, local = subject, placement
    if spec.decontaminate:
        region, local = _decontaminated(subject, placement)
    placed = render_subject(region, local)
    shadow = None

    if spec.shadow is not None:
        # A floating subject hovers above the spot where its shadow falls: PLACE
        # raises the subject, KEEP (whose subject never moves) lowers the shadow.
        rise = round(spec.shadow.lift * max(placement.width, placement.height))
        keep_mode = spec.layout.mode is Mode.KEEP
        origin = (placement.left, placement.top + (rise if keep_mode else 0))
        alpha = cv2.extractChannel(placed, 3)
        layers = cast_shadows(alpha, origin, spec.shadow, spec.shadow_opacity)
        for layer in layers:
            darken(canvas, layer)
        shadow = darkness_map(layers, cw, ch)
        if rise and not keep_mode:
            placement = replace(placement, top=placement.top - rise)

    if spec.detail_transfer:
        laid = _laid_out_source(source if source is not None else subject[:, :, :3], placement)
        placed = transfer_detail(placed, laid, spec.detailer_mode, spec.detail_sigma)

    shown = visible(placement)
    placed_alpha = np.zeros((ch, cw), np.uint8)
    if shown is not None:
        (cx0, cy0, cx1, cy1), (sx0, sy0, sx1, sy1) = shown
        over(canvas[cy0:cy1, cx0:cx1], placed[sy0:sy1, sx0:sx1])
        placed_alpha[cy0:cy1, cx0:cx1] = placed[sy0:sy1, sx0:sx1, 3]
    return Composed(canvas, engine, placed_alpha, shadow)
