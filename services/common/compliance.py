"""Marketplace image rules as presets: what a product-photo must look like to be a
marketplace's main image, the layout that meets it, and the check of one output.

The gateway reads a preset to fill the fields a request left unset and to refuse
fields that contradict it (422 naming the field); the worker sizes the canvas from
the subject's own pixels (`canvas_long_side`) and checks the output (`check`).
The rules and where they come from are listed in the README ("Image QA"), dated."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class CompliancePreset:
    name: str
    title: str
    # Layout and background the preset sets (request fields of product-photo).
    preset: str  # a background preset drawing solid white
    background: tuple[int, int, int]
    scale: float  # the subject's box, larger side, as a share of the canvas
    aspect_ratio: str
    output_format: str
    shadow_type: str
    y: float  # the subject's centre, % of the canvas height (centred: even margins)
    # The rules, checked on every output.
    min_fill: float
    max_fill: float
    min_long_side: int  # px, the output's long side
    min_short_side: int  # px, the output's short side
    max_long_side: int
    max_pixels: int
    max_bytes: int
    formats: tuple[str, ...]
    # The background must be the colour everywhere, shadows included (no shadow allowed).
    pure_background: bool
    # The canvas the layout aims for: at least this, more when the subject has the pixels.
    target_long_side: int
    # Shadow types a request may ask for; contradictions are refused.
    shadows: tuple[str, ...]


WHITE = (255, 255, 255)
# The largest canvas a compliance layout picks on its own (the product-photo default cap).
MAX_AUTO_LONG_SIDE = 2048

PRESETS: dict[str, CompliancePreset] = {
    p.name: p
    for p in (
        CompliancePreset(
            name="amazon-main",
            title="Amazon main image",
            preset="white-studio",
            background=WHITE,
            scale=0.87,
            aspect_ratio="1:1",
            output_format="jpeg",
            shadow_type="none",
            y=50.0,
            min_fill=0.85,
            max_fill=1.0,
            min_long_side=1000,
            min_short_side=500,
            max_long_side=10000,
            max_pixels=10000 * 10000,
            max_bytes=10 * 1024 * 1024,
            formats=("jpeg", "png"),
            pure_background=True,
            target_long_side=1000,
            shadows=("none",),
        ),
        CompliancePreset(
            name="google-merchant",
            title="Google Merchant Center image_link",
            preset="white-studio",
            background=WHITE,
            scale=0.85,
            aspect_ratio="1:1",
            output_format="jpeg",
            shadow_type="none",
            y=50.0,
            min_fill=0.75,
            max_fill=0.90,
            min_long_side=500,
            min_short_side=500,
            max_long_side=8192,
            max_pixels=64_000_000,
            max_bytes=16 * 1024 * 1024,
            formats=("jpeg", "png", "webp"),
            pure_background=False,
            target_long_side=800,
            shadows=("soft", "natural", "hard", "floating", "none"),
        ),
    )
}
NAMES = tuple(PRESETS)


def get(name: str) -> CompliancePreset:
    preset = PRESETS.get(name)
    if preset is None:
        raise KeyError(f"unknown compliance preset {name!r}; one of {', '.join(NAMES)}")
    return preset


def apply(preset: CompliancePreset, fields: dict[str, Any], given: set[str]) -> dict[str, Any]:
    """The product-photo fields with the preset's layout filled in where the request
    left them unset. A given field that contradicts a rule raises ValueError with the
    field's name as its first argument and the reason as its second."""
    out = dict(fields)

    def refuse(field: str, why: str) -> None:
        raise ValueError(field, f"{field} contradicts compliance '{preset.name}': {why}")

    if "preset" in given and fields.get("preset") not in (preset.preset, "custom"):
        refuse("preset", f"the background must be solid white ({preset.preset})")
    prompt = str(fields.get("background_prompt") or "").strip().lower()
    if prompt and prompt not in ("#ffffff", "white"):
        refuse("background_prompt", "the background must be solid white (#FFFFFF)")
    if "shadow_type" in given and fields.get("shadow_type") not in preset.shadows:
        refuse(
            "shadow_type",
            "a shadow is not pure white background; allowed: " + ", ".join(preset.shadows),
        )
    if "scale" in given and not preset.min_fill <= float(fields["scale"]) <= preset.max_fill:
        refuse("scale", f"the product must fill {_fill_range(preset)} of the frame")
    if "padding" in given and 1 - 2 * float(fields.get("padding") or 0) < preset.min_fill:
        refuse("padding", f"the product must fill {_fill_range(preset)} of the frame")
    if "output_format" in given and fields.get("output_format") not in preset.formats:
        refuse("output_format", "accepted formats: " + ", ".join(preset.formats))
    size = fields.get("output_size")
    if size:
        w, h = (int(v) for v in str(size).lower().split("x"))
        if max(w, h) < preset.min_long_side or min(w, h) < preset.min_short_side:
            refuse(
                "output_size",
                f"the image needs at least {preset.min_long_side} px on its long side "
                f"and {preset.min_short_side} px on its short side",
            )
    if "preset" not in given or not prompt:
        out["preset"] = preset.preset
        out.pop("background_prompt", None)
    for name, value in (
        ("shadow_type", preset.shadow_type),
        ("scale", preset.scale),
        ("output_format", preset.output_format),
        ("y", preset.y),
    ):
        if name not in given:
            out[name] = value
    if "aspect_ratio" not in given and not size:
        out["aspect_ratio"] = preset.aspect_ratio
    return out


def _fill_range(preset: CompliancePreset) -> str:
    if preset.max_fill >= 1:
        return f"at least {preset.min_fill:.0%}"
    return f"{preset.min_fill:.0%}-{preset.max_fill:.0%}"


def canvas_size(preset: CompliancePreset, subject_long_px: int, aspect: float) -> tuple[int, int]:
    """(width, height) of the canvas for a subject whose box's long side has
    `subject_long_px` source pixels: large enough that the subject lands at its
    source size (no enlargement) where that is under MAX_AUTO_LONG_SIDE, never
    below the preset's target. aspect = width / height."""
    wanted = math.ceil(subject_long_px / preset.scale)
    long_side = max(preset.target_long_side, min(wanted, MAX_AUTO_LONG_SIDE))
    if aspect >= 1:
        return long_side, max(preset.min_short_side, round(long_side / aspect))
    return max(preset.min_short_side, round(long_side * aspect)), long_side


@dataclass(frozen=True)
class Measured:
    """What the checks read, measured on one output."""

    width: int
    height: int
    format: str
    bytes: int
    fill: float | None
    background_purity: float | None  # share of exact background pixels, shadow excluded
    shadow_visible: bool
    cropped_sides: tuple[str, ...]
    upscale: float | None
    max_upscale: float


def check(preset: CompliancePreset, m: Measured) -> list[dict[str, Any]]:
    """One {"rule", "passed", "value", "required"} per rule of the preset."""
    rules: list[dict[str, Any]] = []

    def rule(name: str, passed: bool, value: Any, required: str) -> None:
        rules.append({"rule": name, "passed": bool(passed), "value": value, "required": required})

    long_side, short_side = max(m.width, m.height), min(m.width, m.height)
    background = "solid white #FFFFFF"
    if preset.pure_background:
        purity = m.background_purity if not m.shadow_visible else 0.0
        rule(
            "background_white",
            purity is not None and purity >= 1.0,
            purity,
            f"every background pixel exactly RGB 255,255,255 ({background}, no shadow)",
        )
    else:
        rule(
            "background_clean",
            m.background_purity is not None and m.background_purity >= 0.99,
            m.background_purity,
            f">= 0.99 of the background away from subject and shadow is {background} "
            "(no overlays, borders or watermarks)",
        )
    rule(
        "product_fill",
        m.fill is not None and preset.min_fill <= m.fill <= preset.max_fill + 1e-9,
        m.fill,
        f"the product's box fills {_fill_range(preset)} of the frame (larger side)",
    )
    rule(
        "min_size",
        long_side >= preset.min_long_side and short_side >= preset.min_short_side,
        [m.width, m.height],
        f"long side >= {preset.min_long_side} px, short side >= {preset.min_short_side} px",
    )
    rule(
        "max_size",
        long_side <= preset.max_long_side and m.width * m.height <= preset.max_pixels,
        [m.width, m.height],
        f"long side <= {preset.max_long_side} px and <= {preset.max_pixels / 1e6:g} MP",
    )
    rule(
        "file_size",
        m.bytes <= preset.max_bytes,
        m.bytes,
        f"<= {preset.max_bytes // (1024 * 1024)} MB",
    )
    rule("format", m.format in preset.formats, m.format, "one of " + ", ".join(preset.formats))
    rule(
        "whole_product",
        not m.cropped_sides,
        list(m.cropped_sides),
        "the product is not cut by the source photo's frame",
    )
    rule(
        "not_upscaled",
        m.upscale is None or m.upscale <= m.max_upscale,
        m.upscale,
        f"the product is enlarged at most {m.max_upscale:g}x over its source pixels",
    )
    return rules
