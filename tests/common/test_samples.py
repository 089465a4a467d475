"""Synthetic product photos: deterministic, right shapes, exact alpha that matches
what is drawn (the mug's handle hole is backdrop)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from services.common.samples import BACKDROPS, PRODUCTS, all_samples, make_sample


def test_same_arguments_same_bytes() -> None:
    a = make_sample("mug", "wood", size=(256, 192), seed=7)
    b = make_sample("mug", "wood", size=(256, 192), seed=7)
    assert np.array_equal(a.rgb, b.rgb) and np.array_equal(a.alpha, b.alpha)
    c = make_sample("mug", "wood", size=(256, 192), seed=8)
    assert not np.array_equal(a.rgb, c.rgb)


def test_all_samples_covers_the_six_combinations() -> None:
    samples = list(all_samples(size=(128, 128)))
    assert [s.name for s in samples] == [f"{p}_{b}" for p in PRODUCTS for b in BACKDROPS]
    for s in samples:
        assert s.rgb.shape == (128, 128, 3) and s.rgb.dtype == np.uint8
        assert s.alpha.shape == (128, 128) and s.alpha.dtype == np.uint8


def test_size_is_width_by_height() -> None:
    s = make_sample("bottle", "plain", size=(320, 200))
    assert s.rgb.shape == (200, 320, 3) and s.alpha.shape == (200, 320)


@pytest.mark.parametrize("product", PRODUCTS)
def test_alpha_is_a_solid_antialiased_product_with_margins(product: str) -> None:
    s = make_sample(product, "plain", size=(512, 512))
    alpha = s.alpha
    # Products leave the border to the backdrop, like a product shot does.
    assert not alpha[:8].any() and not alpha[-8:].any()
    assert not alpha[:, :8].any() and not alpha[:, -8:].any()
    solid = (alpha == 255).mean()
    assert 0.05 < solid < 0.5
    # One product: a single connected silhouette.
    n, _ = cv2.connectedComponents((alpha > 0).astype(np.uint8))
    assert n == 2
    # Anti-aliased: the outline has partial coverage, and only the outline.
    partial = (alpha > 0) & (alpha < 255)
    assert partial.any()
    outline = cv2.morphologyEx((alpha > 127).astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3)))
    assert (outline[partial] > 0).mean() > 0.95


@pytest.mark.parametrize("backdrop", BACKDROPS)
def test_mug_handle_hole_shows_the_backdrop(backdrop: str) -> None:
    s = make_sample("mug", backdrop, size=(512, 512))
    n, labels = cv2.connectedComponents((s.alpha == 0).astype(np.uint8))
    border = set(np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])))
    holes = [i for i in range(1, n) if i not in border]
    assert len(holes) == 1
    hole = labels == holes[0]
    assert hole.sum() > 0.005 * hole.size
    assert (s.alpha[hole] == 0).all()
    # Through the hole we see the backdrop: its colours, not the mug's teal glaze.
    inside = s.rgb[cv2.erode(hole.astype(np.uint8), np.ones((5, 5))) > 0].mean(axis=0)
    mug = s.rgb[s.alpha == 255].mean(axis=0)
    backdrop_px = s.rgb[:40, :40].reshape(-1, 3).mean(axis=0)
    assert np.abs(inside - backdrop_px).sum() < np.abs(inside - mug).sum()


def test_shadow_is_backdrop_not_product() -> None:
    # The cast shadow darkens pixels the alpha calls backdrop: a matting model must
    # leave it out, so the samples must have it there.
    s = make_sample("bottle", "plain", size=(512, 512))
    bg = s.alpha == 0
    lum = s.rgb.astype(np.float32).mean(axis=2)
    assert lum[bg].min() < 0.8 * np.median(lum[bg])


def test_unknown_product_or_backdrop_is_rejected() -> None:
    with pytest.raises(ValueError, match="product"):
        make_sample("vase", "plain")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="backdrop"):
        make_sample("mug", "marble")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least 64"):
        make_sample("mug", "plain", size=(32, 32))
