"""The operations Lightbox offers: price, stages, typical time and the models
each needs. The price table is configuration: LIGHTBOX_PRICES='{"upscale": 10}'
overrides entries; GET /v1/models shows the table in force.

Most operations cost a flat number of credits. Audio and video are priced by the
request (PixelAPI's documented tiers): their entry in LIGHTBOX_PRICES is an object
of tier -> credits, e.g. '{"audio-generate": {"up_to_15s": 4, "up_to_30s": 8}}';
tiers left out keep their defaults. The price is computed once, at submit."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

AUDIO = "audio-generate"
VIDEO = "video-generate"
TRYON = "virtual-tryon"
# Operations whose output is not an image (no width/height for audio, no image QA).
MEDIA_FORMATS = {AUDIO: "wav", VIDEO: "mp4"}

# Audio: PixelAPI's two tiers, by the requested length.
AUDIO_SHORT_MAX_S = 15.0
AUDIO_DEFAULT_S = 15.0
# Video: a base price per resolution covers up to VIDEO_BASE_S seconds; every started
# second beyond costs `per_second_over_3s` (defaults: 480p 50-85, 720p 65-100).
VIDEO_BASE_S = 3
VIDEO_DEFAULT_S = 3.0
VIDEO_DEFAULT_RESOLUTION = "480p"


def _audio_price(tiers: Mapping[str, float], params: Mapping[str, Any]) -> float:
    duration = float(params.get("duration") or AUDIO_DEFAULT_S)
    return tiers["up_to_15s"] if duration <= AUDIO_SHORT_MAX_S else tiers["up_to_30s"]


def _video_price(tiers: Mapping[str, float], params: Mapping[str, Any]) -> float:
    duration = float(params.get("duration") or VIDEO_DEFAULT_S)
    resolution = str(params.get("resolution") or VIDEO_DEFAULT_RESOLUTION)
    extra = max(0, math.ceil(duration - 1e-9) - VIDEO_BASE_S)
    return tiers[resolution] + tiers["per_second_over_3s"] * extra


def _audio_note(t: Mapping[str, float]) -> str:
    return f"{t['up_to_15s']:g} credits up to 15 s, {t['up_to_30s']:g} for 16-30 s."


def _video_note(t: Mapping[str, float]) -> str:
    return (
        f"480p {t['480p']:g} credits, 720p {t['720p']:g} credits for up to {VIDEO_BASE_S} s, "
        f"plus {t['per_second_over_3s']:g} per started second beyond."
    )


# name -> (price of a request from the tiers, the tiers in words).
PRICING: dict[
    str,
    tuple[
        Callable[[Mapping[str, float], Mapping[str, Any]], float],
        Callable[[Mapping[str, float]], str],
    ],
] = {AUDIO: (_audio_price, _audio_note), VIDEO: (_video_price, _video_note)}


@dataclass(frozen=True)
class Operation:
    name: str
    # The price; for operations priced by the request (`tiers`), that of a request
    # with every field at its default (the lowest price of both tables).
    credits: float
    pipeline: tuple[str, ...]
    estimated_seconds: int
    description: str
    # The input images the job needs, by role (stored under job.inputs[role]).
    inputs: tuple[str, ...] = ("image",)
    tiers: tuple[tuple[str, float], ...] = ()

    @property
    def takes_image(self) -> bool:
        return bool(self.inputs)

    def credits_for(self, params: Mapping[str, Any]) -> float:
        """The credits one request with these (validated) fields costs."""
        if not self.tiers:
            return self.credits
        return PRICING[self.name][0](dict(self.tiers), params)

    def price_note(self) -> str:
        """The price table in words ('' for a flat price)."""
        return PRICING[self.name][1](dict(self.tiers)) if self.tiers else ""


def _tiered(
    name: str,
    tiers: dict[str, float],
    pipeline: tuple[str, ...],
    seconds: int,
    description: str,
) -> Operation:
    op = Operation(name, 0.0, pipeline, seconds, description, inputs=(), tiers=tuple(tiers.items()))
    return replace(op, credits=op.credits_for({}))


OPERATIONS: dict[str, Operation] = {
    op.name: op
    for op in (
        Operation(
            "product-photo",
            7.0,
            ("remove-background", "replace-background", "add-shadow"),
            3,
            "Matte the product, draw a new background, add a shadow and compose.",
        ),
        Operation(
            "remove-background",
            2.0,
            ("remove-background",),
            2,
            "Transparent cut-out of the subject.",
        ),
        Operation(
            "replace-background",
            5.0,
            ("remove-background", "replace-background"),
            3,
            "Same subject, new scene; the subject's pixels untouched.",
        ),
        Operation("generate", 3.0, ("generate",), 20, "Text to image.", inputs=()),
        Operation("upscale", 20.0, ("upscale",), 4, "2x or 4x super-resolution."),
        Operation("restore-face", 3.0, ("restore-face",), 4, "Restore faces."),
        Operation("remove-object", 5.0, ("remove-object",), 4, "Erase and fill."),
        _tiered(
            AUDIO,
            {"up_to_15s": 5.0, "up_to_30s": 10.0},
            ("generate-audio",),
            30,
            "Text to music (MusicGen), a WAV file.",
        ),
        _tiered(
            VIDEO,
            {"480p": 50.0, "720p": 65.0, "per_second_over_3s": 5.0},
            ("generate-video",),
            180,
            "Text to video (WAN 2.1), an MP4 file at 16 fps.",
        ),
        Operation(
            TRYON,
            25.0,
            ("virtual-tryon",),
            20,
            "Dress the person photo in the garment (CatVTON), a PNG image.",
            inputs=("person", "garment"),
        ),
    )
}


def _price(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ValueError(f"LIGHTBOX_PRICES: the price of {name} must be a number >= 0")
    return float(value)


def load_operations() -> dict[str, Operation]:
    """OPERATIONS with LIGHTBOX_PRICES applied; unknown names and tiers are refused."""
    raw = os.environ.get("LIGHTBOX_PRICES", "").strip()
    if not raw:
        return dict(OPERATIONS)
    prices = json.loads(raw)
    if not isinstance(prices, dict):
        raise ValueError("LIGHTBOX_PRICES must be a JSON object of operation -> price")
    unknown = set(prices) - set(OPERATIONS)
    if unknown:
        raise ValueError(f"LIGHTBOX_PRICES names unknown operations: {sorted(unknown)}")
    table = dict(OPERATIONS)
    for name, value in prices.items():
        op = table[name]
        if not op.tiers:
            table[name] = replace(op, credits=_price(name, value))
            continue
        defaults = dict(op.tiers)
        if not isinstance(value, dict):
            raise ValueError(
                f"LIGHTBOX_PRICES: {name} is priced by tier; give an object of "
                f"{sorted(defaults)} -> credits"
            )
        bad = set(value) - set(defaults)
        if bad:
            raise ValueError(
                f"LIGHTBOX_PRICES: unknown tiers of {name}: {sorted(bad)} "
                f"(known: {sorted(defaults)})"
            )
        defaults.update({tier: _price(f"{name}.{tier}", v) for tier, v in value.items()})
        op = replace(op, tiers=tuple(defaults.items()))
        table[name] = replace(op, credits=op.credits_for({}))
    return table
