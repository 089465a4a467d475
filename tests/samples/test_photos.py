"""Real photographs from scikit-image's wheel: they load offline, their probes are
well formed, and probing reads an alpha matte the way it says."""

from __future__ import annotations

import numpy as np
import pytest

from services.samples.photos import PHOTO_NAMES, Probe, all_photos, load_photo, probe, probe_score


def test_every_photo_loads_offline_as_rgb_with_probes_of_both_kinds() -> None:
    photos = all_photos()
    assert [p.name for p in photos] == list(PHOTO_NAMES)
    assert {"coffee", "motorcycle", "astronaut"} <= set(PHOTO_NAMES)
    for p in photos:
        assert p.rgb.dtype == np.uint8 and p.rgb.ndim == 3 and p.rgb.shape[2] == 3
        assert min(p.rgb.shape[:2]) >= 256
        assert {q.expect for q in p.probes} == {"subject", "background"}
        for q in p.probes:
            assert 0.0 < q.x < 1.0 and 0.0 < q.y < 1.0 and q.label
        assert len({q.label for q in p.probes}) == len(p.probes)


def test_the_failures_named_in_the_issue_are_probed() -> None:
    labels = {p.name: {q.label: q.expect for q in p.probes} for p in all_photos()}
    coffee, moto, astro = labels["coffee"], labels["motorcycle"], labels["astronaut"]
    assert coffee["spoon bowl"] == coffee["inside of the rim, left wall"] == "subject"
    assert moto["front tyre, bottom"] == moto["rear tyre, bottom"] == "subject"
    assert moto["cardboard box on the shelf"] == "background"
    assert astro["uniform, chest"] == "subject"
    assert astro["flag behind the shoulder"] == "background"


def test_probe_reads_the_3x3_mean_at_the_point() -> None:
    alpha = np.zeros((100, 200), np.uint8)
    alpha[:, 100:] = 255  # right half is subject
    probes = (
        Probe(0.75, 0.5, "subject", "right"),
        Probe(0.25, 0.5, "background", "left"),
        Probe(0.25, 0.5, "subject", "wrong side"),
        Probe(0.5, 0.5, "subject", "on the edge"),  # columns 99..101: 2 of 3 subject
    )
    results = probe(alpha, probes)
    assert [r.ok for r in results] == [True, True, False, True]
    assert results[3].alpha == pytest.approx(170.0)
    assert probe_score(alpha, probes) == 0.75


def test_unknown_photo_is_rejected() -> None:
    with pytest.raises(ValueError, match="photo must be one of"):
        load_photo("lena")
