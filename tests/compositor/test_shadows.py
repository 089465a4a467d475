"""Shadows drawn from the subject's alpha: where they fall, how dark, and that
they scale with the subject."""

from __future__ import annotations

import numpy as np
import pytest

from services.common.errors import InvalidParameter
from services.compositor.backgrounds import solid
from services.compositor.compose import ComposeSpec, compose
from services.compositor.layout import LayoutSpec, alpha_box
from services.compositor.presets import Background
from services.compositor.shadows import (
    SHADOW_STYLES,
    ShadowLayer,
    cast_shadows,
    darken,
    shadow_style,
)

from .products import bottle

SIZE = 600


def shadow_only(alpha: np.ndarray, origin: tuple[int, int], name: str, opacity: float = 0.0):
    """White canvas darkened by the named shadow alone (no subject drawn)."""
    canvas = solid(SIZE, SIZE, (255, 255, 255))
    style = shadow_style(name)
    assert style is not None
    for layer in cast_shadows(alpha, origin, style, opacity):
        darken(canvas, layer)
    return canvas.astype(int).mean(axis=2)


def post(height: int, width: int) -> np.ndarray:
    """A rectangular subject alpha (a box standing on its base)."""
    alpha = np.zeros((height, width), np.uint8)
    alpha[:, :] = 255
    return alpha


def test_unknown_type_names_the_field() -> None:
    with pytest.raises(InvalidParameter) as info:
        shadow_style("dramatic")
    assert info.value.field == "shadow.type"
    assert shadow_style("none") is None


def test_soft_is_darker_under_the_product_than_far_away() -> None:
    alpha = post(200, 100)
    img = shadow_only(alpha, (250, 200), "soft")
    base_y = 400
    assert img[base_y + 2, 300] < 200  # contact + drop shadow right under the base
    assert img[base_y + 2, 300] < img[base_y + 12, 300] < 255
    assert (img[:150] == 255).all() and (img[:, :150] == 255).all()
    # Slightly down: more shadow below the base than above the top.
    assert img[base_y + 8, 300] < img[200 - 8, 300]


@pytest.mark.parametrize("name", ["soft", "hard", "natural", "floating"])
def test_shadow_extent_scales_with_subject_size(name: str) -> None:
    def extent(scale: int) -> tuple[int, int]:
        alpha = post(100 * scale, 50 * scale)
        img = shadow_only(alpha, (300 - 25 * scale, 100), name)
        box = alpha_box(((img < 250) * 255).astype(np.uint8))
        assert box is not None
        return box[2] - box[0], box[3] - box[1]

    (w1, h1), (w2, h2) = extent(1), extent(2)
    assert w2 / w1 == pytest.approx(2.0, rel=0.15)
    assert h2 / h1 == pytest.approx(2.0, rel=0.15)


def test_hard_is_sharp_and_natural_is_soft() -> None:
    alpha = post(200, 80)

    def edge_width(name: str) -> int:
        img = shadow_only(alpha, (260, 150), name)
        row = img[340]  # through the projected shadow, beside the subject
        transition = (row < 250) & (row > row.min() + 5)
        return int(np.count_nonzero(transition))

    assert edge_width("hard") < edge_width("natural")


def test_projected_shadows_fall_back_and_to_the_right() -> None:
    """Key light from the front left, the usual studio set-up: cast shadows
    reach up (back, onto the floor behind) and to the right; hard reaches further."""
    alpha = post(200, 80)

    def weight_centre(name: str) -> tuple[float, float]:
        img = shadow_only(alpha, (260, 150), name)
        weight = 255 - img[:350]  # above the base line: the projected part
        weight[150:350, 260:340] = 0  # ignore what the subject would cover
        ys, xs = np.mgrid[0:350, 0:SIZE]
        return float((weight * xs).sum() / weight.sum()), float((weight * ys).sum() / weight.sum())

    natural_x, natural_y = weight_centre("natural")
    hard_x, hard_y = weight_centre("hard")
    assert natural_x > 330 and hard_x > natural_x
    assert hard_y < natural_y < 350


def test_contact_shadow_hugs_a_rounded_base() -> None:
    alpha = np.zeros((200, 100), np.uint8)
    alpha[:150] = 255
    yy, xx = np.mgrid[150:200, 0:100]
    alpha[150:200] = (((xx - 50) / 50.0) ** 2 + ((yy - 150) / 50.0) ** 2 <= 1) * 255
    style = shadow_style("soft")
    assert style is not None
    contact = cast_shadows(alpha, (250, 200), style)[1]
    canvas = solid(SIZE, SIZE, (255, 255, 255))
    darken(canvas, contact)
    img = canvas.astype(int).mean(axis=2)
    assert img[401, 300] < 200  # under the lowest point
    assert img[401, 255] == 255  # not under the curve's raised sides


def test_floating_has_no_contact_shadow_but_grounded_types_do() -> None:
    alpha = post(200, 100)
    for name in ("soft", "hard", "natural"):
        style = shadow_style(name)
        assert style is not None and len(cast_shadows(alpha, (250, 200), style)) == 2
        img = shadow_only(alpha, (250, 200), name)
        assert img[401, 300] < 215, name
    floating = shadow_style("floating")
    assert floating is not None and len(cast_shadows(alpha, (250, 200), floating)) == 1


def test_opacity_override_scales_darkness() -> None:
    alpha = post(200, 100)
    light = 255 - shadow_only(alpha, (250, 200), "soft", opacity=0.2)
    dark = 255 - shadow_only(alpha, (250, 200), "soft", opacity=0.8)
    assert dark.sum() == pytest.approx(4 * light.sum(), rel=0.1)


def test_darken_multiplies_and_clips_to_canvas() -> None:
    canvas = solid(10, 10, (200, 100, 50))
    layer = ShadowLayer(np.full((6, 6), 128, np.uint8), left=7, top=-2)
    darken(canvas, layer)
    assert (canvas[:4, 7:] == (100, 50, 25)).all()
    assert (canvas[4:] == (200, 100, 50)).all() and (canvas[:, :7] == (200, 100, 50)).all()


def test_shadow_tints_coloured_backgrounds() -> None:
    subject = bottle(300)
    layout = LayoutSpec(output_width=400, output_height=400, scale=0.5, y=50.0)
    spec = ComposeSpec(Background("solid", ((200, 150, 100),)), layout, SHADOW_STYLES["soft"])
    out = compose(subject, spec).pixels.astype(int)
    x0, y0, x1, y1 = alpha_box(
        ((np.abs(out - (200, 150, 100)).sum(axis=2) > 0) * 255).astype(np.uint8)
    )
    under = out[y1 - 2, (x0 + x1) // 2]
    # Darker, same hue: red > green > blue in roughly the original ratio.
    assert under[0] < 200 and under[0] > under[1] > under[2]
    assert (out[5, 5] == (200, 150, 100)).all()
