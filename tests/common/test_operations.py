"""The price table (services/common/operations.py): PixelAPI's audio and video
tiers, computed from the request, and LIGHTBOX_PRICES overriding flat prices
and tiers, refusing what it does not know."""

from __future__ import annotations

import json

import pytest

from services.common.operations import OPERATIONS, load_operations


@pytest.mark.parametrize(
    ("duration", "credits"),
    [(None, 5.0), (5, 5.0), (15, 5.0), (15.5, 10.0), (16, 10.0), (30, 10.0)],
)
def test_audio_costs_5_up_to_15_s_and_10_beyond(duration: float | None, credits: float) -> None:
    params = {} if duration is None else {"duration": duration}
    assert OPERATIONS["audio-generate"].credits_for(params) == credits


@pytest.mark.parametrize(
    ("resolution", "duration", "credits"),
    [
        (None, None, 50.0),
        ("480p", 1, 50.0),
        ("480p", 3, 50.0),
        ("480p", 3.2, 55.0),
        ("480p", 10, 85.0),
        ("720p", 1, 65.0),
        ("720p", 4, 70.0),
        ("720p", 10, 100.0),
    ],
)
def test_video_costs_by_resolution_and_started_seconds_within_50_to_100(
    resolution: str | None, duration: float | None, credits: float
) -> None:
    params = {k: v for k, v in (("resolution", resolution), ("duration", duration)) if v}
    assert OPERATIONS["video-generate"].credits_for(params) == credits


def test_flat_prices_and_the_listed_price() -> None:
    assert OPERATIONS["virtual-tryon"].credits_for({"category": "dress"}) == 25.0
    assert OPERATIONS["virtual-tryon"].inputs == ("person", "garment")
    # Listed: the price of a request with default fields.
    assert OPERATIONS["audio-generate"].credits == 5.0
    assert OPERATIONS["video-generate"].credits == 50.0
    assert "10 for 16-30 s" in OPERATIONS["audio-generate"].price_note()


def test_lightbox_prices_sets_tiers_and_flat_prices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "LIGHTBOX_PRICES",
        json.dumps(
            {
                "audio-generate": {"up_to_30s": 8},
                "video-generate": {"480p": 40, "per_second_over_3s": 2},
                "virtual-tryon": 20,
            }
        ),
    )
    table = load_operations()
    audio, video = table["audio-generate"], table["video-generate"]
    assert audio.credits_for({"duration": 10}) == 5.0 and audio.credits_for({"duration": 20}) == 8
    assert video.credits == 40.0 and video.credits_for({"duration": 10}) == 54.0
    assert video.credits_for({"resolution": "720p", "duration": 5}) == 69.0
    assert table["virtual-tryon"].credits == 20.0
    assert "40 credits" in video.price_note()


@pytest.mark.parametrize(
    ("prices", "match"),
    [
        ({"audio-generate": 7}, "priced by tier"),
        ({"audio-generate": {"up_to_60s": 7}}, "unknown tiers"),
        ({"video-generate": {"720p": -1}}, ">= 0"),
        ({"virtual-tryon": {"x": 1}}, "must be a number"),
        ({"music": 1}, "unknown operations"),
    ],
)
def test_lightbox_prices_refuses_what_it_does_not_know(
    monkeypatch: pytest.MonkeyPatch, prices: dict, match: str
) -> None:
    monkeypatch.setenv("LIGHTBOX_PRICES", json.dumps(prices))
    with pytest.raises(ValueError, match=match):
        load_operations()
