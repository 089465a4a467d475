"""Alpha compositing and every blend mode against its formula."""

from __future__ import annotations

import numpy as np
import pytest

from services.common.errors import InvalidParameter
from services.compositor.blend import BLEND_MODES, blend, blend_uint8, over


def _soft_light(b: float, t: float) -> float:
    if t <= 0.5:
        return b - (1 - 2 * t) * b * (1 - b)
    d = ((16 * b - 12) * b + 4) * b if b <= 0.25 else b**0.5
    return b + (2 * t - 1) * (d - b)


def _overlay(b: float, t: float) -> float:
    return 2 * b * t if b <= 0.5 else 1 - 2 * (1 - b) * (1 - t)


def _hard_light(b: float, t: float) -> float:
    return 2 * b * t if t <= 0.5 else 1 - 2 * (1 - b) * (1 - t)


def _dodge(b: float, t: float) -> float:
    if b == 0:
        return 0.0
    return 1.0 if t >= 1 else min(1.0, b / (1 - t))


def _burn(b: float, t: float) -> float:
    if b == 1:
        return 1.0
    return 0.0 if t <= 0 else 1 - min(1.0, (1 - b) / t)


FORMULAS = {
    "add": lambda b, t: min(1.0, b + t),
    "multiply": lambda b, t: b * t,
    "screen": lambda b, t: 1 - (1 - b) * (1 - t),
    "overlay": _overlay,
    "soft_light": _soft_light,
    "hard_light": _hard_light,
    "color_dodge": _dodge,
    "color_burn": _burn,
    "difference": lambda b, t: abs(b - t),
    "exclusion": lambda b, t: b + t - 2 * b * t,
    "lighten": max,
    "darken": min,
}
PAIRS = [
    (0.0, 0.0),
    (0.2, 0.7),
    (0.7, 0.2),
    (0.5, 0.5),
    (0.9, 0.95),
    (1.0, 0.3),
    (0.1, 1.0),
    (0.3, 0.0),
    (0.6, 0.4),
]


def test_every_mode_has_a_formula() -> None:
    assert set(BLEND_MODES) == set(FORMULAS)


@pytest.mark.parametrize("mode", sorted(FORMULAS))
def test_mode_matches_formula(mode: str) -> None:
    base = np.array([b for b, _ in PAIRS], np.float32)
    top = np.array([t for _, t in PAIRS], np.float32)
    got = blend(base, top, mode)
    want = np.array([FORMULAS[mode](b, t) for b, t in PAIRS], np.float32)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, np.clip(want, 0, 1), atol=1e-5)


def test_blend_uint8_rounds() -> None:
    base = np.array([[[200, 100, 0]]], np.uint8)
    top = np.array([[[128, 255, 50]]], np.uint8)
    assert blend_uint8(base, top, "multiply").tolist() == [[[100, 100, 0]]]
    assert blend_uint8(base, top, "screen").tolist() == [[[228, 255, 50]]]


def test_unknown_mode_names_detailer_mode() -> None:
    with pytest.raises(InvalidParameter) as info:
        blend(np.zeros(1, np.float32), np.zeros(1, np.float32), "vivid_light")
    assert info.value.field == "detailer_mode"


def test_over_is_exact_for_opaque_and_mixes_soft_alpha() -> None:
    canvas = np.full((2, 3, 3), 200, np.uint8)
    fg = np.zeros((2, 3, 4), np.uint8)
    fg[0, 0] = (13, 77, 250, 255)  # opaque: copied exactly
    fg[0, 1] = (50, 50, 50, 128)  # premultiplied 50 at half coverage
    fg[0, 2] = (0, 0, 0, 0)  # transparent: canvas untouched
    over(canvas, fg)
    assert canvas[0, 0].tolist() == [13, 77, 250]
    assert canvas[0, 1].tolist() == [50 + round(200 * 127 / 255)] * 3
    assert canvas[0, 2].tolist() == [200, 200, 200]
