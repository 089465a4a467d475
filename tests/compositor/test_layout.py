"""Layout: aspect parsing, canvas size, placement within 1 px of x/y/scale,
and the premultiplied resampling of the subject."""

from __future__ import annotations

import numpy as np
import pytest

from services.common.errors import InvalidParameter
from services.compositor.layout import (
    LayoutSpec,
    Mode,
    alpha_box,
    canvas_size,
    keep,
    parse_aspect_ratio,
    place,
    premultiply,
    render_subject,
    visible,
)


@pytest.mark.parametrize(
    ("text", "ratio"),
    [
        ("1:1", 1.0),
        ("4:5", 0.8),
        ("16:9", 16 / 9),
        (" 21 : 9 ", 21 / 9),
        ("8:5 (Cinematic View)", 1.6),
        ("2.35:1", 2.35),
        ("16x9", 16 / 9),
        ("", None),
    ],
)
def test_parse_aspect_ratio(text: str, ratio: float | None) -> None:
    assert parse_aspect_ratio(text) == (pytest.approx(ratio) if ratio else None)


@pytest.mark.parametrize("text", ["0:5", "5:0", "wide", "16:", "-4:3", "20:1"])
def test_bad_aspect_ratio_names_field(text: str) -> None:
    with pytest.raises(InvalidParameter) as info:
        parse_aspect_ratio(text)
    assert info.value.field == "layout.aspect_ratio"


def test_default_canvas_keeps_input_aspect_and_caps_long_side() -> None:
    assert canvas_size(LayoutSpec(), 1200, 800, 4096, 2048) == (1200, 800)
    assert canvas_size(LayoutSpec(), 3000, 4000, 4096, 2048) == (1536, 2048)
    assert canvas_size(LayoutSpec(aspect=16 / 9), 1000, 1000, 4096, 2048) == (1000, 562)
    assert canvas_size(LayoutSpec(aspect=0.8), 1000, 500, 4096, 2048) == (800, 1000)


def test_output_size_megapixel_and_one_side() -> None:
    spec = LayoutSpec(aspect=16 / 9, output_width=640, output_height=640)
    assert canvas_size(spec, 100, 100, 4096, 2048) == (640, 640)  # exact size wins
    assert canvas_size(LayoutSpec(aspect=2.0, output_width=800), 10, 10, 4096, 2048) == (800, 400)
    assert canvas_size(LayoutSpec(output_height=300), 400, 200, 4096, 2048) == (600, 300)
    w, h = canvas_size(LayoutSpec(aspect=1.0, megapixel=1.0), 10, 10, 4096, 2048)
    assert (w, h) == (1000, 1000)


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        (LayoutSpec(output_width=5000, output_height=100), "layout.output_width"),
        (LayoutSpec(output_width=100, output_height=8), "layout.output_height"),
        (LayoutSpec(aspect=8.0, output_height=1000), "layout.output_width"),
        (LayoutSpec(megapixel=20.0), "layout.megapixel"),
    ],
)
def test_canvas_limits(spec: LayoutSpec, field: str) -> None:
    with pytest.raises(InvalidParameter) as info:
        canvas_size(spec, 1000, 1000, 4096, 2048)
    assert info.value.field == field


def test_alpha_box() -> None:
    alpha = np.zeros((50, 80), np.uint8)
    assert alpha_box(alpha) is None
    alpha[10:20, 30:45] = 255
    alpha[40, 70] = 5  # matting noise
    assert alpha_box(alpha) == (30, 10, 71, 41)
    assert alpha_box(alpha, threshold=8) == (30, 10, 45, 20)


@pytest.mark.parametrize(
    ("box", "canvas", "scale", "x", "y"),
    [
        ((100, 50, 300, 450), (1000, 1000), 0.8, 50.0, 55.0),
        ((0, 0, 640, 200), (800, 800), 0.5, 30.0, 70.0),
        ((10, 10, 60, 40), (1920, 1080), 1.0, 50.0, 50.0),
        ((5, 5, 105, 305), (600, 400), 0.05, 90.0, 10.0),
    ],
)
def test_place_centre_and_scale_within_a_pixel(box, canvas, scale, x, y) -> None:
    p = place(LayoutSpec(scale=scale, x=x, y=y), box, canvas)
    cw, ch = canvas
    bw, bh = box[2] - box[0], box[3] - box[1]
    assert abs(p.left + p.width / 2 - x / 100 * cw) <= 1
    assert abs(p.top + p.height / 2 - y / 100 * ch) <= 1
    # The subject's longer side, relative to the canvas, spans `scale` of it.
    if p.width / cw >= p.height / ch:
        assert abs(p.width - scale * cw) <= 1
    else:
        assert abs(p.height - scale * ch) <= 1
    fit = scale * min(cw / bw, ch / bh)
    assert abs(p.width - bw * fit) <= 1 and abs(p.height - bh * fit) <= 1


def test_padding_shrinks_and_shifts_into_the_margins() -> None:
    p = place(LayoutSpec(scale=1.0, x=0.0, y=100.0, padding=0.1), (0, 0, 100, 100), (500, 500))
    assert p.width == p.height == 400
    assert (p.left, p.top) == (50, 50)


def test_keep_is_identity() -> None:
    p = keep((10, 20, 110, 220), 640, 480)
    assert (p.canvas_width, p.canvas_height, p.left, p.top) == (640, 480, 10, 20)
    assert p.unscaled


def test_premultiply_keeps_opaque_pixels_exactly() -> None:
    rgba = np.random.default_rng(0).integers(0, 256, (30, 40, 4), dtype=np.uint8)
    rgba[:, :20, 3] = 255
    pm = premultiply(rgba)
    assert np.array_equal(pm[:, :20], rgba[:, :20])
    expected = np.rint(rgba[:, 20:, :3] * (rgba[:, 20:, 3:] / 255.0))
    assert np.abs(pm[:, 20:, :3] - expected).max() <= 0.5


def test_render_subject_resamples_premultiplied() -> None:
    rgba = np.zeros((100, 100, 4), np.uint8)
    rgba[..., :3] = (0, 255, 0)  # colour under transparent pixels must not leak
    rgba[20:80, 20:80] = (200, 30, 30, 255)
    box = alpha_box(rgba[..., 3])
    down = render_subject(rgba, place(LayoutSpec(scale=0.5), box, (100, 100)))
    up = render_subject(rgba, place(LayoutSpec(scale=1.0), box, (150, 150)))
    for img in (down, up):
        assert img[..., 1].max() <= 31  # no green anywhere, even at the edge
        assert (img[..., :3] <= img[..., 3:]).all()  # valid premultiplied colour


def test_visible_clips_to_canvas() -> None:
    p = place(LayoutSpec(scale=0.5, x=0.0, y=50.0), (0, 0, 100, 100), (200, 200))
    (cx0, cy0, cx1, cy1), (sx0, sy0, sx1, sy1) = visible(p)
    assert cx0 == 0 and sx0 == 50 and cx1 - cx0 == sx1 - sx0 == 50
    assert LayoutSpec().mode is Mode.PLACE
