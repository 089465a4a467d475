"""Alpha compositing ("over") and the separable blend modes.

`over` works on uint8 with exact integer rounding so that opaque subject pixels
land bit for bit. Blend modes work on float32 in 0..1 (base = the lower layer,
top = the layer blended onto it) following the W3C Compositing and Blending
Level 1 formulas; `blend_uint8` wraps them for uint8 RGB images."""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from services.common.errors import InvalidParameter


def over(canvas: np.ndarray, premultiplied: np.ndarray) -> None:
    """Composite a premultiplied RGBA uint8 (H, W, 4) onto an RGB uint8 (H, W, 3)
    canvas region, in place: out = colour + canvas * (255 - alpha) / 255.

    Where alpha is 255 the result is the subject's colour exactly."""
    alpha = cv2.extractChannel(premultiplied, 3)
    behind = cv2.multiply(canvas, cv2.cvtColor(255 - alpha, cv2.COLOR_GRAY2RGB), scale=1 / 255)
    colour = cv2.cvtColor(premultiplied, cv2.COLOR_RGBA2RGB)
    canvas[:] = cv2.add(colour, behind)


def _soft_light(b: np.ndarray, t: np.ndarray) -> np.ndarray:
    d = np.where(b <= 0.25, ((16.0 * b - 12.0) * b + 4.0) * b, np.sqrt(b))
    return np.where(t <= 0.5, b - (1.0 - 2.0 * t) * b * (1.0 - b), b + (2.0 * t - 1.0) * (d - b))


def _hard_light(b: np.ndarray, t: np.ndarray) -> np.ndarray:
    return np.where(t <= 0.5, 2.0 * b * t, 1.0 - 2.0 * (1.0 - b) * (1.0 - t))


def _color_dodge(b: np.ndarray, t: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.minimum(1.0, b / (1.0 - t))
    return np.where(b <= 0.0, 0.0, np.where(t >= 1.0, 1.0, q))


def _color_burn(b: np.ndarray, t: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        q = 1.0 - np.minimum(1.0, (1.0 - b) / t)
    return np.where(b >= 1.0, 1.0, np.where(t <= 0.0, 0.0, q))


BLEND_MODES: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "add": lambda b, t: np.minimum(b + t, 1.0),
    "multiply": lambda b, t: b * t,
    "screen": lambda b, t: b + t - b * t,
    "overlay": lambda b, t: _hard_light(t, b),
    "soft_light": _soft_light,
    "hard_light": _hard_light,
    "color_dodge": _color_dodge,
    "color_burn": _color_burn,
    "difference": lambda b, t: np.abs(b - t),
    "exclusion": lambda b, t: b + t - 2.0 * b * t,
    "lighten": np.maximum,
    "darken": np.minimum,
}


def check_mode(mode: str, field: str = "detailer_mode") -> str:
    """The mode name if known, else InvalidParameter naming `field`."""
    if mode not in BLEND_MODES:
        raise InvalidParameter(
            field, f"unknown blend mode {mode!r}; one of {', '.join(sorted(BLEND_MODES))}"
        )
    return mode


def blend(base: np.ndarray, top: np.ndarray, mode: str) -> np.ndarray:
    """Blend `top` onto `base` (float32 arrays in 0..1, same shape) -> float32 0..1."""
    out = BLEND_MODES[check_mode(mode)](base, top)
    return np.clip(out, 0.0, 1.0).astype(np.float32, copy=False)


def blend_uint8(base: np.ndarray, top: np.ndarray, mode: str) -> np.ndarray:
    """`blend` on uint8 images of the same shape (e.g. RGB HWC) -> uint8, rounded."""
    b = base.astype(np.float32) * np.float32(1 / 255)
    t = top.astype(np.float32) * np.float32(1 / 255)
    out = blend(b, t, mode) * np.float32(255)
    return np.rint(out).astype(np.uint8)
