"""Compose end to end on arrays: the bit-exact invariant, placement, background
images and the floating lift."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from services.common.errors import InvalidParameter
from services.compositor.compose import ComposeSpec, compose, cover
from services.compositor.layout import LayoutSpec, Mode, alpha_box
from services.compositor.presets import Background
from services.compositor.shadows import SHADOW_STYLES

from .products import bottle, photographed

WHITE = Background("white-studio")
KEEP = LayoutSpec(mode=Mode.KEEP)


@pytest.fixture(scope="module")
def soft_subject() -> np.ndarray:
    """A bottle 'photographed' on grass: soft edges carry green, as mattes do."""
    s = bottle(320)
    alpha = cv2.GaussianBlur(s[:, :, 3], (0, 0), 1.5)
    s[:, :, 3] = np.where(s[:, :, 3] == 255, 255, alpha)
    return np.dstack([photographed(s, (70, 160, 60)), s[:, :, 3]])


KEEP_CASES = [(WHITE, shadow) for shadow in SHADOW_STYLES] + [
    (Background("gradient", ((0, 0, 0), (9, 9, 9))), "floating"),
    (Background("marble"), "soft"),
    (Background("outdoor"), "natural"),
]


@pytest.mark.parametrize(("background", "shadow"), KEEP_CASES)
def test_keep_mode_is_bit_exact(soft_subject: np.ndarray, background, shadow: str) -> None:
    spec = ComposeSpec(background, KEEP, SHADOW_STYLES[shadow])
    out = compose(soft_subject, spec).pixels
    opaque = soft_subject[:, :, 3] == 255
    assert out.shape == soft_subject.shape[:2] + (3,)
    assert np.array_equal(out[opaque], soft_subject[:, :, :3][opaque])


def test_place_at_one_to_one_is_bit_exact() -> None:
    rng = np.random.default_rng(5)
    subject = np.zeros((500, 500, 4), np.uint8)
    subject[50:450, 150:350, :3] = rng.integers(0, 256, (400, 200, 3), dtype=np.uint8)
    subject[50:450, 150:350, 3] = 255
    # Box 200x400 on a 500x500 canvas at scale 0.8 lands exactly 1:1.
    layout = LayoutSpec(output_width=500, output_height=500, scale=0.8, x=40.0, y=50.0)
    out = compose(subject, ComposeSpec(WHITE, layout, SHADOW_STYLES["soft"])).pixels
    left, top = 200 - 100, 250 - 200
    assert np.array_equal(out[top : top + 400, left : left + 200], subject[50:450, 150:350, :3])


@pytest.mark.parametrize(("x", "y", "scale"), [(50, 55, 0.8), (25, 40, 0.3), (70, 60, 0.55)])
def test_placement_lands_within_a_pixel(x: float, y: float, scale: float) -> None:
    subject = np.zeros((300, 400, 4), np.uint8)
    subject[40:260, 100:210] = (255, 0, 255, 255)
    layout = LayoutSpec(output_width=800, output_height=600, scale=scale, x=x, y=y)
    out = compose(subject, ComposeSpec(WHITE, layout, None)).pixels
    magenta = ((out[..., 1] < 128) & (out[..., 0] > 128)).astype(np.uint8) * 255
    x0, y0, x1, y1 = alpha_box(magenta)
    assert abs((x0 + x1) / 2 - x / 100 * 800) <= 1
    assert abs((y0 + y1) / 2 - y / 100 * 600) <= 1
    assert abs((y1 - y0) - scale * 600) <= 1  # the tall side governs on this canvas


def test_white_studio_is_white_away_from_the_shadow(soft_subject: np.ndarray) -> None:
    layout = LayoutSpec(output_width=600, output_height=600, scale=0.5, y=50.0)
    out = compose(soft_subject, ComposeSpec(WHITE, layout, SHADOW_STYLES["soft"])).pixels
    assert (out[:100] == 255).all() and (out[:, :120] == 255).all()
    assert (out[-60:] == 255).all()


def test_floating_lifts_the_subject_above_its_shadow() -> None:
    subject = bottle(300)
    layout = LayoutSpec(output_width=600, output_height=600, scale=0.5, y=50.0)
    grounded = compose(subject, ComposeSpec(WHITE, layout, None)).pixels
    floating = compose(subject, ComposeSpec(WHITE, layout, SHADOW_STYLES["floating"])).pixels

    def bottom(img: np.ndarray) -> int:
        return alpha_box(((img.min(axis=2) < 60) * 255).astype(np.uint8))[3]

    lift = bottom(grounded) - bottom(floating)
    assert lift == round(0.08 * 300)
    # The shadow lies below the lifted subject, under where it would have stood.
    column = floating[:, 300].astype(int).sum(axis=1)
    darkest = int(np.argmin(column[bottom(floating) + 2 :])) + bottom(floating) + 2
    assert darkest > bottom(floating) + 5 and column[darkest] < 3 * 255 - 30


def test_background_image_covers_the_canvas() -> None:
    image = np.zeros((100, 300, 3), np.uint8)
    image[:, :150] = (255, 0, 0)
    image[:, 150:] = (0, 0, 255)
    cov = cover(image, 200, 200)
    assert cov.shape == (200, 200, 3)
    assert (cov[:, :90] == (255, 0, 0)).all() and (cov[:, 110:] == (0, 0, 255)).all()
    subject = np.zeros((200, 200, 4), np.uint8)
    subject[50:150, 80:120] = (0, 255, 0, 255)
    result = compose(subject, ComposeSpec(WHITE, KEEP, None), background_image=image)
    assert result.background_engine == "image"
    assert (result.pixels[5, 5] == (255, 0, 0)).all() and (
        result.pixels[100, 100] == (0, 255, 0)
    ).all()


def test_empty_subject_and_mismatched_source() -> None:
    empty = np.zeros((64, 64, 4), np.uint8)
    with pytest.raises(InvalidParameter) as info:
        compose(empty, ComposeSpec(WHITE, LayoutSpec(), None))
    assert info.value.field == "subject"
    out = compose(empty, ComposeSpec(WHITE, KEEP, None)).pixels
    assert (out == 255).all()
    with pytest.raises(InvalidParameter) as info:
        compose(bottle(64), ComposeSpec(WHITE, KEEP, None), source=np.zeros((10, 10, 3), np.uint8))
    assert info.value.field == "source"
    with pytest.raises(InvalidParameter) as info:
        compose(
            bottle(64),
            ComposeSpec(WHITE, LayoutSpec(), None, preserve_shadow=True),
            source=np.zeros((64, 64, 3), np.uint8),
        )
    assert info.value.field == "preserve_shadow"
