"""Shadows cast by the subject, drawn from its alpha.

A shadow is a darkness layer: uint8 (H, W), 0 = untouched, 255 = black, with its
top-left position on the canvas. `darken` multiplies the canvas by
(255 - darkness) / 255, so a shadow tints whatever lies under it (darker wood
on wood, grey on white) instead of painting grey over it.

Every size is a share of the subject's extent (the longer side of its alpha box),
so shadows scale with the subject. Blurs are done on a downscaled copy where
the blur is about two pixels wide, then upsampled: a Gaussian is smooth, so
nothing visible is lost and big blurs cost almost nothing."""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from services.common.errors import InvalidParameter
from services.compositor.layout import Box, alpha_box

# Blur sigma, in working pixels, that the downscaling aims for.
WORK_SIGMA = 2.0


@dataclass(frozen=True)
class ShadowStyle:
    """How one shadow type looks. Lengths are shares of the subject's extent."""

    opacity: float  # darkness of the cast shadow at its densest
    blur: float  # Gaussian sigma where the shadow meets the subject
    far_blur: float = 0.0  # extra sigma at the far end (projected shadows soften)
    far_fade: float = 0.0  # how much opacity is lost at the far end
    offset: tuple[float, float] = (0.0, 0.0)  # (dx, dy) of the whole shadow
    squash: float = 1.0  # the silhouette's height after projection onto the floor
    shear: float = 0.0  # sideways travel of the silhouette's top, per unit height
    taper: float = 1.0  # width of the far end vs the base (perspective)
    spread: float = 1.0  # width of the shadow vs the subject
    gap: float = 0.0  # the shadow sits this far below the base
    lift: float = 0.0  # the subject is raised this far above its place (floating)
    contact: float = 0.0  # opacity of the contact shadow; 0 = not grounded


SHADOW_STYLES: dict[str, ShadowStyle | None] = {
    "soft": ShadowStyle(opacity=0.42, blur=0.03, offset=(0.0, 0.018), squash=0.96, contact=0.5),
    "hard": ShadowStyle(
        opacity=0.5,
        blur=0.0025,
        far_blur=0.006,
        far_fade=0.2,
        squash=0.55,
        shear=0.75,
        taper=0.92,
        contact=0.45,
    ),
    "natural": ShadowStyle(
        opacity=0.55,
        blur=0.008,
        far_blur=0.045,
        far_fade=0.65,
        squash=0.32,
        shear=0.42,
        taper=0.82,
        contact=0.55,
    ),
    "floating": ShadowStyle(
        opacity=0.4, blur=0.04, squash=0.07, spread=0.8, gap=0.01, lift=0.08, contact=0.0
    ),
    "none": None,
}
# Contact shadow geometry: the band's half-thickness and blur, and how fast it
# fades where the subject's bottom edge rises off the floor.
CONTACT_THICKNESS = 0.01
CONTACT_BLUR = 0.004
CONTACT_FADE = 0.02


@dataclass(frozen=True)
class ShadowLayer:
    """A darkness map (uint8 (H, W), 255 = black) and its top-left on the canvas."""

    darkness: np.ndarray
    left: int
    top: int


def shadow_style(name: str) -> ShadowStyle | None:
    """The style called `name` (None for "none"); InvalidParameter for unknown names."""
    if name not in SHADOW_STYLES:
        raise InvalidParameter(
            "shadow.type", f"unknown shadow type {name!r}; one of {', '.join(SHADOW_STYLES)}"
        )
    return SHADOW_STYLES[name]


def _work_factor(sigma_px: float, extent: float) -> float:
    """Downscale factor that makes `sigma_px` about WORK_SIGMA, keeping >= 48 px of extent."""
    return max(1.0, min(sigma_px / WORK_SIGMA, extent / 48.0))


def _project(
    alpha: np.ndarray, box: Box, origin: tuple[int, int], style: ShadowStyle, extent: float
) -> ShadowLayer | None:
    """The silhouette projected, blurred and faded: the cast shadow layer."""
    x0, y0, x1, y1 = box
    ox, oy = origin
    bw, bh = x1 - x0, y1 - y0
    sigma = style.blur * extent
    far_sigma = (style.blur + style.far_blur) * extent
    f = _work_factor(sigma, extent)

    # Canvas coordinates of the silhouette box corners and of their projections.
    left, right, base, top = ox + x0, ox + x1, oy + y1, oy + y0
    cx = 0.5 * (left + right)
    dx, dy = style.offset[0] * extent, style.offset[1] * extent + style.gap * extent
    height = bh * style.squash
    lean = style.shear * bh
    half_base = 0.5 * bw * style.spread
    half_far = half_base * style.taper
    src = np.float32([[left, top], [right, top], [right, base], [left, base]])
    dst = np.float32(
        [
            [cx - half_far + lean + dx, base - height + dy],
            [cx + half_far + lean + dx, base - height + dy],
            [cx + half_base + dx, base + dy],
            [cx - half_base + dx, base + dy],
        ]
    )
    margin = 3.0 * far_sigma + 2.0 * f
    rx0, ry0 = np.floor(dst.min(axis=0) - margin).astype(int)
    rx1, ry1 = np.ceil(dst.max(axis=0) + margin).astype(int)

    # Working-resolution copies: source box and destination region scaled by 1/f.
    sw, sh = max(2, round(bw / f)), max(2, round(bh / f))
    small = cv2.resize(alpha[y0:y1, x0:x1], (sw, sh), interpolation=cv2.INTER_AREA)
    ww, wh = max(2, round((rx1 - rx0) / f)), max(2, round((ry1 - ry0) / f))
    src_w = (src - np.float32([left, top])) * np.float32([sw / bw, sh / bh])
    dst_w = (dst - np.float32([rx0, ry0])) / np.float32(f)
    matrix = cv2.getPerspectiveTransform(src_w, dst_w)
    warped = cv2.warpPerspective(small, matrix, (ww, wh), flags=cv2.INTER_LINEAR)
    shadow = cv2.GaussianBlur(warped.astype(np.float32), (0, 0), sigma / f)

    # Projected shadows soften and fade with distance from the base.
    if style.far_blur > 0 or style.far_fade > 0:
        rows = np.arange(wh, dtype=np.float32) * f + ry0
        t = np.clip((base + dy - rows) / max(height, 1.0), 0.0, 1.0)[:, None]
        if style.far_blur > 0:
            far = cv2.GaussianBlur(warped.astype(np.float32), (0, 0), far_sigma / f)
            shadow = shadow * (1.0 - t) + far * t
        shadow *= 1.0 - style.far_fade * t
    shadow *= np.float32(style.opacity)
    full_w, full_h = rx1 - rx0, ry1 - ry0
    darkness = cv2.resize(
        np.clip(shadow, 0, 255).astype(np.uint8), (full_w, full_h), interpolation=cv2.INTER_LINEAR
    )
    return ShadowLayer(darkness, int(rx0), int(ry0))


def _contact(
    alpha: np.ndarray, box: Box, origin: tuple[int, int], opacity: float, extent: float
) -> ShadowLayer:
    """A thin dark band hugging the subject's bottom edge where it meets the floor.

    Each column's band sits just under that column's lowest opaque pixel, and
    fades as that pixel rises above the lowest point of the whole subject: a
    rounded base touches the floor only in the middle, so its contact shadow
    tapers along the curve instead of hanging under it as a flat bar."""
    x0, y0, x1, y1 = box
    ox, oy = origin
    solid_px = alpha[y0:y1, x0:x1] > 127
    has = solid_px.any(axis=0)
    bottom = (y1 - y0) - 1 - np.argmax(solid_px[::-1], axis=0)  # lowest solid row per column
    rise = np.where(has, (y1 - y0 - 1) - bottom, np.inf).astype(np.float32)
    strength = np.exp(-((rise / max(1.0, CONTACT_FADE * extent)) ** 2))
    half = max(1.5, CONTACT_THICKNESS * extent)
    sigma = max(0.8, CONTACT_BLUR * extent)
    pad = int(np.ceil(2 * half + 3 * sigma))
    top = int(np.min(np.where(has, bottom, y1 - y0))) - pad
    rows = np.arange(top, (y1 - y0) + pad, dtype=np.float32)[:, None]
    centre = np.where(has, bottom, 0).astype(np.float32)[None, :] + 0.25 * half
    band = np.exp(-(((rows - centre) / half) ** 2)) * strength[None, :]
    band = np.pad(band.astype(np.float32), ((0, 0), (pad, pad)))
    band = cv2.GaussianBlur(band, (0, 0), sigma)
    darkness = np.clip(band * (255.0 * opacity), 0, 255).astype(np.uint8)
    return ShadowLayer(darkness, ox + x0 - pad, oy + y0 + top)


def cast_shadows(
    alpha: np.ndarray, origin: tuple[int, int], style: ShadowStyle, opacity: float = 0.0
) -> list[ShadowLayer]:
    """Shadow layers for a placed subject.

    alpha: uint8 (h, w), the subject's alpha as placed; origin: its top-left on the
    canvas. `opacity` (0..1) overrides the style's; 0 keeps it. Returns the cast
    shadow and, for grounded styles, the contact shadow (apply both)."""
    box = alpha_box(alpha)
    if box is None:
        return []
    extent = float(max(box[2] - box[0], box[3] - box[1]))
    if opacity > 0:
        ratio = opacity / style.opacity
        style = replace(style, opacity=opacity, contact=min(1.0, style.contact * ratio))
    layers = []
    cast = _project(alpha, box, origin, style, extent)
    if cast is not None:
        layers.append(cast)
    if style.contact > 0:
        layers.append(_contact(alpha, box, origin, style.contact, extent))
    return layers


def darken(canvas: np.ndarray, layer: ShadowLayer) -> None:
    """Apply a shadow layer to an RGB uint8 (H, W, 3) canvas, in place (clipped to it)."""
    h, w = canvas.shape[:2]
    lh, lw = layer.darkness.shape
    cx0, cy0 = max(layer.left, 0), max(layer.top, 0)
    cx1, cy1 = min(layer.left + lw, w), min(layer.top + lh, h)
    if cx0 >= cx1 or cy0 >= cy1:
        return
    d = layer.darkness[cy0 - layer.top : cy1 - layer.top, cx0 - layer.left : cx1 - layer.left]
    region = canvas[cy0:cy1, cx0:cx1]
    light = cv2.cvtColor(255 - d, cv2.COLOR_GRAY2RGB)
    region[:] = cv2.multiply(region, light, scale=1 / 255)


def darkness_map(layers: list[ShadowLayer], width: int, height: int) -> np.ndarray:
    """The darkness the layers add together on a (height, width) canvas, as `darken`
    applies them one after another: uint8 (H, W), 0 = untouched, 255 = black."""
    light = np.full((height, width), 255, np.uint8)
    for layer in layers:
        lh, lw = layer.darkness.shape
        cx0, cy0 = max(layer.left, 0), max(layer.top, 0)
        cx1, cy1 = min(layer.left + lw, width), min(layer.top + lh, height)
        if cx0 >= cx1 or cy0 >= cy1:
            continue
        d = layer.darkness[cy0 - layer.top : cy1 - layer.top, cx0 - layer.left : cx1 - layer.left]
        region = light[cy0:cy1, cx0:cx1]
        region[:] = cv2.multiply(region, 255 - d, scale=1 / 255)
    return 255 - light
