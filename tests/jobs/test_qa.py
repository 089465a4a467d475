"""Each QA score on crafted inputs whose value is known (services/jobs/qa.py)."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from services.jobs import qa

RED = (200, 30, 30)
WHITE = (255, 255, 255)
GREY = (128, 128, 128)


def disk_alpha(size: int, radius: float, centre: tuple[float, float] | None = None) -> np.ndarray:
    """An anti-aliased disk: uint8 (size, size), drawn at 8x and area-downsampled."""
    k = 8
    cx, cy = centre or (size / 2, size / 2)
    big = np.zeros((size * k, size * k), np.uint8)
    cv2.circle(big, (round(cx * k), round(cy * k)), round(radius * k), 255, -1)
    return cv2.resize(big, (size, size), interpolation=cv2.INTER_AREA)


def over(colour: tuple[int, int, int], alpha: np.ndarray, bg: tuple[int, int, int]) -> np.ndarray:
    a = alpha.astype(np.float32)[:, :, None] / 255
    out = np.asarray(colour, np.float32) * a + np.asarray(bg, np.float32) * (1 - a)
    return np.clip(out.round(), 0, 255).astype(np.uint8)


def jpeg_round_trip(rgb: np.ndarray, quality: int = 90) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality, subsampling=0)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def ring_share(inner: int, outer: int) -> float:
    return outer * outer - inner * inner


# -- edge_halo ------------------------------------------------------------------------


def test_edge_halo_clean_antialiased_edge_scores_zero() -> None:
    alpha = disk_alpha(400, 150)
    image = jpeg_round_trip(over(RED, alpha, WHITE))
    assert qa.edge_halo(image, alpha) == pytest.approx(0.0, abs=0.01)


def test_edge_halo_grey_fringe_scores_its_share_of_the_band() -> None:
    """A red disk cut out with a 2 px grey rim of old background, on white: the rim
    is the halo, and the band is band_px either side of the outline."""
    size, radius, rim = 400, 150, 2
    alpha = np.zeros((size, size), np.uint8)
    cv2.circle(alpha, (200, 200), radius, 255, -1)
    image = np.full((size, size, 3), WHITE, np.uint8)
    cv2.circle(image, (200, 200), radius, GREY, -1)
    cv2.circle(image, (200, 200), radius - rim, RED, -1)
    k = qa.band_px(image.shape)
    expected = ring_share(radius - rim, radius) / ring_share(radius - k, radius + k)
    assert expected == pytest.approx(2 / (2 * k), rel=0.05)
    assert qa.edge_halo(image, alpha) == pytest.approx(expected, abs=0.03)


def test_edge_halo_counts_a_cast_shadow_next_to_the_edge_as_background() -> None:
    alpha = disk_alpha(400, 120)
    darkness = np.zeros((400, 400), np.uint8)
    darkness[300:340, 60:340] = 110  # a hard shadow band under the disk
    darkness = cv2.GaussianBlur(darkness, (0, 0), 6)
    background = over((0, 0, 0), darkness, WHITE)
    a = alpha.astype(np.float32)[:, :, None] / 255
    image = (np.asarray(RED, np.float32) * a + background * (1 - a)).round().astype(np.uint8)
    assert qa.edge_halo(image, alpha, shadow=darkness) == pytest.approx(0.0, abs=0.01)


def test_edge_halo_transparent_cutout_compares_edges_with_the_subject() -> None:
    alpha = np.zeros((400, 400), np.uint8)
    cv2.circle(alpha, (200, 200), 150, 255, -1)
    clean = np.zeros((400, 400, 3), np.uint8)
    clean[alpha > 0] = RED
    assert qa.edge_halo(clean, alpha, transparent=True) == pytest.approx(0.0, abs=0.01)
    fringed = clean.copy()
    cv2.circle(fringed, (200, 200), 150, GREY, 2)
    assert qa.edge_halo(fringed, alpha, transparent=True) > 0.2


def test_edge_halo_is_none_without_a_subject() -> None:
    assert qa.edge_halo(np.full((64, 64, 3), 255, np.uint8), np.zeros((64, 64), np.uint8)) is None


# -- matte_uncertainty ------------------------------------------------------------------


def test_matte_uncertainty_clean_matte_scores_zero() -> None:
    assert qa.matte_uncertainty(disk_alpha(400, 150)) == pytest.approx(0.0, abs=0.002)


def test_matte_uncertainty_soft_hole_scores_its_share_of_the_subject() -> None:
    """A solid disk with a soft (alpha 128) hole in its middle: the hole is neither
    in nor out and far from any clear background, so all of it is uncertain."""
    alpha = np.zeros((400, 400), np.uint8)
    cv2.circle(alpha, (200, 200), 150, 255, -1)
    cv2.circle(alpha, (200, 200), 40, 128, -1)
    expected = np.count_nonzero(alpha == 128) / np.count_nonzero(alpha > 0)
    assert qa.matte_uncertainty(alpha) == pytest.approx(expected, rel=0.02)


def test_matte_uncertainty_mushy_matte_is_mostly_uncertain() -> None:
    alpha = (disk_alpha(400, 150).astype(np.float32) * 0.6).astype(np.uint8)
    assert qa.matte_uncertainty(alpha) > 0.9


def test_matte_uncertainty_empty_matte_is_none() -> None:
    assert qa.matte_uncertainty(np.zeros((32, 32), np.uint8)) is None


# -- subject_cropped ---------------------------------------------------------------------


def test_cropped_sides_product_cut_by_the_right_and_bottom_frame() -> None:
    alpha = np.zeros((300, 400), np.uint8)
    alpha[100:300, 250:400] = 255  # a box running off the right and bottom edges
    assert qa.cropped_sides(alpha) == ["bottom", "right"]


def test_cropped_sides_whole_product_and_a_stray_speck() -> None:
    alpha = disk_alpha(300, 100)
    alpha[0, 10] = 255  # one speck of matting noise on the top edge
    assert qa.cropped_sides(alpha) == []


# -- subject_fill and upscale -------------------------------------------------------------


def test_subject_fill_box_shares_and_position() -> None:
    alpha = np.zeros((1000, 2000), np.uint8)
    alpha[100:900, 200:600] = 255  # 400 x 800 box, centre (400, 500)
    fill = qa.subject_fill(alpha)
    assert fill is not None
    assert fill.value == pytest.approx(0.8)  # 800 of 1000 rows
    assert fill.area == pytest.approx(400 * 800 / 2e6)
    assert (fill.center_x, fill.center_y) == (pytest.approx(20.0), pytest.approx(50.0))
    assert fill.box == (200, 100, 600, 900)
    assert qa.subject_fill(np.zeros((10, 10), np.uint8)) is None


def test_subject_upscale_is_the_ratio_of_the_long_sides() -> None:
    source = np.zeros((200, 200), np.uint8)
    source[50:150, 80:130] = 255  # 50 x 100
    canvas = np.zeros((1000, 1000), np.uint8)
    canvas[100:900, 300:700] = 255  # 400 x 800
    assert qa.subject_upscale(source, canvas) == pytest.approx(8.0)


# -- background_purity ----------------------------------------------------------------------


def test_background_purity_jpeg_white_that_is_254_is_not_white() -> None:
    alpha = disk_alpha(256, 60)
    near_white = jpeg_round_trip(over(RED, alpha, (254, 254, 254)))
    assert qa.background_purity(near_white, alpha, WHITE) == 0.0
    assert qa.background_purity(near_white, alpha, (254, 254, 254)) == 1.0
    white = jpeg_round_trip(over(RED, alpha, WHITE))
    assert qa.background_purity(white, alpha, WHITE) == 1.0


def test_background_purity_counts_stray_pixels_and_skips_the_shadow() -> None:
    alpha = np.zeros((200, 200), np.uint8)
    image = np.full((200, 200, 3), 255, np.uint8)
    image[:20, :] = 250  # a grey strip: 10 % of the background
    assert qa.background_purity(image, alpha, WHITE) == pytest.approx(0.9)
    shadow = np.zeros((200, 200), np.uint8)
    shadow[:20, :] = 5  # that strip is the shadow: it is not background
    assert qa.background_purity(image, alpha, WHITE, shadow=shadow) == 1.0


# -- shadow ------------------------------------------------------------------------------------


def test_shadow_check_visible_and_cut_by_the_bottom_edge() -> None:
    darkness = np.zeros((100, 100), np.uint8)
    darkness[80:100, 20:80] = 60
    found = qa.shadow_check(darkness)
    assert found.visible and found.touches_edge and found.sides == ("bottom",)
    assert found.darkness == pytest.approx(60 / 255)


def test_shadow_check_faint_shadow_is_not_visible() -> None:
    darkness = np.zeros((100, 100), np.uint8)
    darkness[40:60, 40:60] = 4
    found = qa.shadow_check(darkness)
    assert not found.visible and not found.touches_edge


def test_edge_halo_a_shaded_rim_is_not_old_background() -> None:
    """A product whose own rim is darker than its inside (shading), photographed on a
    light backdrop: the rim strays from the inside colour, but away from the old
    backdrop, so it is no halo; a rim of the old backdrop's grey is."""
    size, radius = 400, 150
    alpha = np.zeros((size, size), np.uint8)
    cv2.circle(alpha, (200, 200), radius, 255, -1)
    image = np.full((size, size, 3), WHITE, np.uint8)
    cv2.circle(image, (200, 200), radius, (60, 10, 10), -1)  # dark rim
    cv2.circle(image, (200, 200), radius - 2, RED, -1)
    light_backdrop = (236.0, 236.0, 236.0)
    assert qa.edge_halo(image, alpha, old_background=light_backdrop) == 0.0
    assert qa.edge_halo(image, alpha) > 0.2  # without the old backdrop, every stray counts
    cv2.circle(image, (200, 200), radius, GREY, 2)
    assert qa.edge_halo(image, alpha, old_background=(128.0, 128.0, 128.0)) > 0.2


def test_old_background_is_the_backdrop_next_to_the_subject() -> None:
    alpha = disk_alpha(300, 80)
    photo = over(RED, alpha, (30, 120, 200))
    photo[:20] = (0, 0, 0)  # far from the subject: not part of the estimate
    assert qa.old_background(photo, alpha) == (30.0, 120.0, 200.0)
    assert qa.old_background(photo, np.full((300, 300), 255, np.uint8)) is None
