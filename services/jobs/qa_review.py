"""The `qa` object of a completed image job: the scores of services/jobs/qa.py on
what the pipeline had, whether a person should look (`needs_review`), why
(`reasons`, a machine code and a sentence each), and the marketplace rules of a
`compliance` preset, pass or fail with the measured value.

    {"scores": {...}, "needs_review": bool, "reasons": [{"code", "message"}],
     "compliance": {"preset", "passed", "rules": [...]} | null}
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from services.common import compliance
from services.common.qa_thresholds import QaThresholds
from services.jobs import qa

# Operations whose output shows a matted subject (the others get resolution only).
SUBJECT_OPERATIONS = ("product-photo", "replace-background", "remove-background")
_SOLID = re.compile(r"^solid:#([0-9a-fA-F]{6})$")
_SIZE = re.compile(r"^(\d+)x(\d+)$")
_ASPECT = re.compile(r"^(\d+):(\d+)$")
# An output matches a requested aspect ratio within this (rounding to whole pixels).
_ASPECT_TOLERANCE = 0.01


@dataclass(frozen=True)
class Evidence:
    """What the pipeline had when the job's output was made.

    source_alpha: the matte at the source's size (None where no matting ran);
    canvas_alpha: the subject on the output canvas; shadow: the darkness the
    compositor cast on it (None without a cast shadow); background: what drew the
    background ("solid:#ffffff", "procedural:marble", "" for none)."""

    operation: str
    params: dict[str, Any]
    source_size: tuple[int, int] | None  # (width, height); None: no input (generate)
    output: bytes
    format: str
    source_alpha: np.ndarray | None = None
    # The source photo (H, W, 3), where its background is real (not a sent cut-out's).
    source_rgb: np.ndarray | None = None
    canvas_alpha: np.ndarray | None = None
    shadow: np.ndarray | None = None
    background: str = ""
    engine_confidence: float | None = None


def decode_output(data: bytes) -> tuple[np.ndarray, np.ndarray | None]:
    """The output as a client decodes it: RGB uint8 (H, W, 3) and alpha (H, W) or None."""
    with Image.open(io.BytesIO(data)) as image:
        if image.mode in ("RGBA", "LA") or "transparency" in image.info:
            rgba = np.asarray(image.convert("RGBA"))
            return np.ascontiguousarray(rgba[:, :, :3]), np.ascontiguousarray(rgba[:, :, 3])
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        return np.asarray(rgb), None


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(float(value), digits)


def _solid_colour(evidence: Evidence) -> tuple[int, int, int] | None:
    if evidence.operation == "remove-background":
        hexa = str(evidence.params.get("bg_color") or "").lstrip("#")
    else:
        found = _SOLID.match(evidence.background)
        hexa = found.group(1) if found else ""
    if len(hexa) != 6:
        return None
    return (int(hexa[0:2], 16), int(hexa[2:4], 16), int(hexa[4:6], 16))


def _requested_size(evidence: Evidence) -> tuple[int, int] | None:
    p = evidence.params
    if evidence.operation == "generate":
        return int(p.get("width") or 1024), int(p.get("height") or 1024)
    if evidence.operation == "upscale" and evidence.source_size is not None:
        scale = int(p.get("scale") or 4)
        return evidence.source_size[0] * scale, evidence.source_size[1] * scale
    found = _SIZE.match(str(p.get("output_size") or ""))
    return (int(found.group(1)), int(found.group(2))) if found else None


def _requested_aspect(evidence: Evidence) -> float | None:
    found = _ASPECT.match(str(evidence.params.get("aspect_ratio") or ""))
    return int(found.group(1)) / int(found.group(2)) if found else None


def _resolution(evidence: Evidence, width: int, height: int, upscale: float | None) -> dict:
    requested = _requested_size(evidence)
    aspect = _requested_aspect(evidence)
    source = evidence.source_size or (None, None)
    matches: bool | None = None
    if requested is not None:
        matches = (width, height) == requested
    elif aspect is not None:
        matches = abs(width / height - aspect) <= _ASPECT_TOLERANCE * aspect
    return {
        "width": width,
        "height": height,
        "requested": None if requested is None else f"{requested[0]}x{requested[1]}",
        "requested_aspect_ratio": evidence.params.get("aspect_ratio") or None,
        "matches_request": matches,
        "source_width": source[0],
        "source_height": source[1],
        "upscale": _round(upscale, 3),
    }


def scores(evidence: Evidence) -> dict[str, Any]:
    """Every score of the output (None where one does not apply)."""
    rgb, alpha_out = decode_output(evidence.output)
    height, width = rgb.shape[:2]
    out: dict[str, Any] = dict.fromkeys(
        (
            "edge_halo",
            "matte_uncertainty",
            "subject_cropped",
            "subject_fill",
            "background_purity",
            "shadow",
        )
    )
    upscale = None
    canvas = evidence.canvas_alpha
    if evidence.operation in SUBJECT_OPERATIONS and canvas is not None:
        source = evidence.source_alpha
        mask_only = bool(evidence.params.get("mask_only"))
        if not mask_only:
            old = None
            if evidence.source_rgb is not None and source is not None:
                old = qa.old_background(evidence.source_rgb, source)
            halo = qa.edge_halo(
                rgb, canvas, evidence.shadow, transparent=alpha_out is not None, old_background=old
            )
            out["edge_halo"] = {"value": _round(halo)}
        if source is not None:
            out["matte_uncertainty"] = {
                "value": _round(qa.matte_uncertainty(source)),
                "engine_confidence": _round(evidence.engine_confidence),
            }
            sides = qa.cropped_sides(source)
            out["subject_cropped"] = {"value": bool(sides), "sides": sides}
            upscale = qa.subject_upscale(source, canvas)
        fill = qa.subject_fill(canvas)
        if fill is not None:
            out["subject_fill"] = {
                "value": _round(fill.value),
                "area": _round(fill.area),
                "center_x": _round(fill.center_x, 2),
                "center_y": _round(fill.center_y, 2),
                "box": list(fill.box),
            }
        colour = _solid_colour(evidence)
        if colour is not None and not mask_only and alpha_out is None:
            purity = qa.background_purity(rgb, canvas, colour, evidence.shadow)
            out["background_purity"] = {
                "value": _round(purity),
                "colour": "#{:02x}{:02x}{:02x}".format(*colour),
            }
        requested_shadow = str(evidence.params.get("shadow_type") or "soft")
        if evidence.operation == "product-photo" and requested_shadow != "none":
            darkness = evidence.shadow
            if darkness is None:
                darkness = np.zeros((height, width), np.uint8)
            found = qa.shadow_check(darkness)
            out["shadow"] = {
                "requested": requested_shadow,
                "visible": found.visible,
                "darkness": _round(found.darkness),
                "edge_darkness": _round(found.edge_darkness),
                "touches_edge": found.touches_edge,
                "sides": list(found.sides),
            }
    out["resolution"] = _resolution(evidence, width, height, upscale)
    return out


def _pct(value: float) -> str:
    return f"{value:.1%}"


def reasons(found: dict[str, Any], limits: QaThresholds) -> list[dict[str, str]]:
    """The reasons a person should look, from the scores and the thresholds."""
    out: list[dict[str, str]] = []

    def add(code: str, message: str) -> None:
        out.append({"code": code, "message": message})

    halo = (found.get("edge_halo") or {}).get("value")
    if halo is not None and halo > limits.max_edge_halo:
        add(
            "edge_halo",
            f"{_pct(halo)} of the subject's edge is a colour fringe "
            f"(limit {_pct(limits.max_edge_halo)}): the old background may show.",
        )
    matte = (found.get("matte_uncertainty") or {}).get("value")
    if matte is not None and matte > limits.max_matte_uncertainty:
        add(
            "matte_uncertain",
            f"{_pct(matte)} of the subject is neither clearly in nor out of the matte "
            f"(limit {_pct(limits.max_matte_uncertainty)}): parts may be see-through or missing.",
        )
    cropped = found.get("subject_cropped") or {}
    if cropped.get("value") and limits.review_cropped:
        add(
            "subject_cropped",
            "The subject is cut by the source photo's frame at the "
            + " and ".join(cropped["sides"])
            + ": part of the product is missing.",
        )
    fill = (found.get("subject_fill") or {}).get("value")
    if fill is not None and fill < limits.min_subject_fill:
        add(
            "subject_small",
            f"The subject spans {_pct(fill)} of the canvas "
            f"(least {_pct(limits.min_subject_fill)}).",
        )
    purity = (found.get("background_purity") or {}).get("value")
    if purity is not None and purity < limits.min_background_purity:
        colour = found["background_purity"]["colour"]
        add(
            "background_impure",
            f"{_pct(purity)} of the background is exactly {colour} "
            f"(least {_pct(limits.min_background_purity)}).",
        )
    shadow = found.get("shadow")
    if shadow and limits.review_shadow:
        if not shadow["visible"]:
            add("shadow_missing", f"The requested {shadow['requested']} shadow is not visible.")
        cut = shadow["edge_darkness"] / max(shadow["darkness"], 1e-6)
        if shadow["visible"] and cut > limits.max_shadow_cut:
            add(
                "shadow_cut",
                "The shadow runs into the canvas edge at the "
                + " and ".join(shadow["sides"])
                + f", still {cut:.0%} as dark as its darkest point "
                f"(most {limits.max_shadow_cut:.0%}).",
            )
    res = found["resolution"]
    if res["matches_request"] is False:
        wanted = res["requested"] or f"aspect {res['requested_aspect_ratio']}"
        add("size_mismatch", f"The output is {res['width']}x{res['height']}, not {wanted}.")
    if res["upscale"] is not None and res["upscale"] > limits.max_upscale:
        add(
            "upscaled",
            f"The subject is enlarged {res['upscale']:.2f}x over its source pixels "
            f"(most {limits.max_upscale:g}x): the source is too small for this size.",
        )
    if max(res["width"], res["height"]) < limits.min_long_side:
        add(
            "low_resolution",
            f"The output's long side is {max(res['width'], res['height'])} px "
            f"(least {limits.min_long_side}).",
        )
    return out


def compliance_report(
    preset: compliance.CompliancePreset,
    found: dict[str, Any],
    evidence: Evidence,
    limits: QaThresholds,
) -> dict[str, Any]:
    res = found["resolution"]
    shadow = found.get("shadow") or {}
    measured = compliance.Measured(
        width=res["width"],
        height=res["height"],
        format=evidence.format,
        bytes=len(evidence.output),
        fill=(found.get("subject_fill") or {}).get("value"),
        background_purity=(found.get("background_purity") or {}).get("value"),
        shadow_visible=bool(shadow.get("visible")),
        cropped_sides=tuple((found.get("subject_cropped") or {}).get("sides") or ()),
        upscale=res["upscale"],
        max_upscale=limits.max_upscale,
    )
    rules = compliance.check(preset, measured)
    return {"preset": preset.name, "passed": all(r["passed"] for r in rules), "rules": rules}


def grade(evidence: Evidence, limits: QaThresholds) -> dict[str, Any]:
    """The job's `qa` object. `limits`: the server's thresholds with the request's
    `qa_thresholds` already applied."""
    found = scores(evidence)
    why = reasons(found, limits)
    report = None
    name = evidence.params.get("compliance")
    if name and evidence.operation == "product-photo":
        report = compliance_report(compliance.get(str(name)), found, evidence, limits)
        failed = [
            f"{r['rule']} is {r['value']} (needs {r['required']})"
            for r in report["rules"]
            if not r["passed"]
        ]
        if failed:
            why.append(
                {
                    "code": "compliance_failed",
                    "message": f"Not {name} compliant: {'; '.join(failed)}.",
                }
            )
    return {"scores": found, "needs_review": bool(why), "reasons": why, "compliance": report}


def failed_grade(message: str) -> dict[str, Any]:
    """The `qa` object when grading itself failed: the image goes to a person."""
    return {
        "scores": {},
        "needs_review": True,
        "reasons": [{"code": "qa_failed", "message": f"Image QA could not run: {message}"}],
        "compliance": None,
    }
