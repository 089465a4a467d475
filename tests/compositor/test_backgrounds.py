"""Backgrounds, presets and procedural scenes: colours at known points,
determinism per seed, and the look each scene is meant to have."""

from __future__ import annotations

import numpy as np
import pytest

from services.common.errors import InvalidParameter
from services.compositor import backgrounds, scenes
from services.compositor.presets import PRESETS, Background, draw_background, preset_background


def test_solid_is_exact() -> None:
    img = backgrounds.solid(37, 21, (12, 200, 255))
    assert img.shape == (21, 37, 3) and img.dtype == np.uint8
    assert (img == (12, 200, 255)).all()


def test_white_studio_is_pure_white() -> None:
    img = draw_background(Background("white-studio"), 300, 200, seed=7)
    assert (img == 255).all()


@pytest.mark.parametrize(("w", "h"), [(640, 480), (300, 17), (16, 16)])
def test_vertical_gradient_hits_both_ends_and_is_linear(w: int, h: int) -> None:
    img = backgrounds.linear_gradient(w, h, (255, 255, 255), (200, 100, 0), 90.0)
    assert (img[0] == (255, 255, 255)).all()
    assert (img[-1] == (200, 100, 0)).all()
    rows = img.astype(np.float64).mean(axis=1)
    t = np.arange(h)[:, None] / (h - 1)
    expected = 255 + t * (np.array([200, 100, 0]) - 255)
    # Ordered dither keeps every row's mean within half a level of the true ramp.
    assert np.abs(rows - expected).max() <= 0.6


def test_horizontal_and_diagonal_gradients() -> None:
    img = backgrounds.linear_gradient(64, 48, (0, 0, 0), (255, 0, 0), 0.0)
    assert (img[:, 0] == 0).all() and (img[:, -1] == (255, 0, 0)).all()
    assert abs(img[24, 31, 0] - 127) <= 2
    diag = backgrounds.linear_gradient(64, 64, (0, 0, 0), (255, 255, 255), 45.0)
    assert diag[0, 0, 0] == 0 and diag[-1, -1, 0] == 255
    assert abs(int(diag[0, -1, 0]) - int(diag[-1, 0, 0])) <= 2


def test_gradient_has_no_banding() -> None:
    # 30 levels over 1024 rows: without dither each level would be a 34 px band.
    img = backgrounds.linear_gradient(256, 1024, (255, 255, 255), (225, 225, 225))
    assert len(np.unique(img[500, :, 0])) == 2
    steps = np.diff(img[:, 100, 0].astype(int))
    assert np.count_nonzero(steps) > 100


def test_radial_gradient_centre_and_corners() -> None:
    img = backgrounds.radial_gradient(400, 400, (250, 250, 250), (100, 110, 120), (0.5, 0.5), 0.5)
    assert np.abs(img[200, 200].astype(int) - 250).max() <= 1
    assert np.abs(img[0, 0].astype(int) - (100, 110, 120)).max() <= 1
    assert img[200, 300, 0] < img[200, 200, 0]


def test_gradient_light_runs_white_to_light_grey() -> None:
    img = draw_background(Background("gradient-light"), 200, 400, 0)
    assert (img[0] == 255).all()
    rows = img[:, :, 0].mean(axis=1)
    assert np.all(np.diff(rows) <= 0.8) and 215 <= rows[-1] <= 230


def test_studio_sweep_falloff() -> None:
    img = backgrounds.studio_sweep(600, 400, (240, 240, 240)).astype(float)
    luma = img.mean(axis=2)
    assert luma.max() <= 241  # the given colour is the brightest, nothing clips
    behind_subject = luma[int(0.5 * 400), 300]
    assert luma[2, 300] < behind_subject - 10  # the wall darkens upwards
    assert luma[2, 2] < luma[2, 300]  # vignette in the corners
    # No visible horizon line: row means change by well under a level per row.
    assert np.abs(np.diff(luma[:, 250:350].mean(axis=1))).max() < 1.0


def test_dark_studio_is_dark_with_a_lit_centre() -> None:
    img = draw_background(Background("dark-studio"), 300, 300, 0).mean(axis=2)
    assert img.mean() < 70 and img[150, 150] > img[5, 5] + 15


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_draws(name: str) -> None:
    colours = {"solid": ((10, 20, 30),), "gradient": ((0, 0, 0), (255, 255, 255))}
    needed = PRESETS[name].colors[0]
    bg = preset_background(name, colours.get(name, ((200, 10, 10),) * needed))
    img = draw_background(bg, 96, 64, seed=3)
    assert img.shape == (64, 96, 3) and img.dtype == np.uint8
    assert bg.description and bg.engine


def test_unknown_preset_and_colour_count() -> None:
    with pytest.raises(InvalidParameter) as info:
        preset_background("velvet")
    assert info.value.field == "background.preset"
    with pytest.raises(InvalidParameter) as info:
        preset_background("solid")
    assert info.value.field == "background.prompt"


SCENES = ["marble", "wood", "concrete", "paper", "outdoor"]


@pytest.mark.parametrize("name", SCENES)
def test_scene_is_deterministic_per_seed(name: str) -> None:
    draw = getattr(scenes, f"draw_{name}")
    a, b, c = draw(160, 120, 1), draw(160, 120, 1), draw(160, 120, 2)
    assert a.shape == (120, 160, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert np.abs(a.astype(int) - c.astype(int)).mean() > 1.0


def test_marble_is_white_with_grey_veins() -> None:
    img = scenes.draw_marble(512, 512, 4).astype(float)
    luma = img.mean(axis=2)
    assert 215 < np.median(luma) < 250
    assert (luma < np.median(luma) - 25).mean() > 0.002  # veins exist
    assert (luma < np.median(luma) - 25).mean() < 0.2  # but it is white marble
    assert np.abs(img[..., 0] - img[..., 2]).mean() < 8  # near-neutral


def test_wood_is_brown_with_grain() -> None:
    img = scenes.draw_wood(512, 512, 2).astype(float)
    r, g, b = (img[..., k].mean() for k in range(3))
    assert r > g > b and r - b > 30
    # Grain runs along the boards: columns vary more than rows.
    across = np.abs(np.diff(img[:, :, 0], axis=0)).mean()
    along = np.abs(np.diff(img[:, :, 0], axis=1)).mean()
    assert across > along


def test_concrete_is_grey_and_textured() -> None:
    img = scenes.draw_concrete(256, 256, 5).astype(float)
    assert np.abs(img[..., 0] - img[..., 2]).mean() < 6
    assert 100 < img.mean() < 200 and img.mean(axis=2).std() > 4


def test_paper_takes_a_colour_or_picks_a_pastel() -> None:
    mint = scenes.draw_paper(200, 200, 0, (189, 236, 214)).astype(float)
    centre = mint[110, 100]
    assert centre[1] > centre[0] and centre[1] > centre[2]
    pastel = scenes.draw_paper(200, 200, 0).astype(float)
    assert pastel.mean() > 180


def test_outdoor_is_green_above_and_warm_ground_below() -> None:
    img = scenes.draw_outdoor(256, 256, 3).astype(float)
    top, bottom = img[: 256 // 2], img[-30:]
    assert top[..., 1].mean() > top[..., 2].mean()  # foliage/sky, not a grey wall
    assert bottom[..., 0].mean() > bottom[..., 2].mean()  # warm stone ledge
    assert img.mean(axis=2).std() > 10  # bokeh contrast
