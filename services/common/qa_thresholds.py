"""When an output needs a human look: the thresholds of image QA, in one typed table.

The worker's defaults are a setting (LIGHTBOX_QA_THRESHOLDS, a JSON object of these
keys); a submit may override any of them with its `qa_thresholds` object (profiles
set it). Unknown keys and out-of-range values are refused, naming the key."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model


class QaThresholds(BaseModel):
    """Every threshold, with its default. README "Image QA" defines each score."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)

    max_edge_halo: float = Field(
        0.1, ge=0, le=1, description="Most edge_halo (share of the edge band) that passes."
    )
    max_matte_uncertainty: float = Field(
        0.08, ge=0, le=1, description="Most matte_uncertainty (share of the subject) that passes."
    )
    min_subject_fill: float = Field(
        0.25,
        ge=0,
        le=1,
        description="Least subject_fill (the box's larger side share of the canvas) that passes.",
    )
    min_background_purity: float = Field(
        0.99,
        ge=0,
        le=1,
        description="Least background_purity (share of exact background pixels) that passes.",
    )
    max_upscale: float = Field(
        2.0,
        ge=1,
        le=16,
        description="Most the subject may be enlarged over its source pixels before review.",
    )
    min_long_side: int = Field(
        500, ge=16, le=8192, description="Fewest pixels on the output's long side that pass."
    )
    max_shadow_cut: float = Field(
        0.15,
        ge=0,
        le=1,
        description="Most darkness a shadow may still have where the canvas edge cuts it, "
        "as a share of its darkest point.",
    )
    review_cropped: bool = Field(
        True, description="Whether a subject cut by the source photo's frame needs review."
    )
    review_shadow: bool = Field(
        True,
        description="Whether a requested shadow that is invisible or cut by the canvas "
        "edge (max_shadow_cut) needs review.",
    )

    def merged(self, overrides: dict[str, Any] | None) -> QaThresholds:
        """These thresholds with a request's `qa_thresholds` applied (validated again)."""
        if not overrides:
            return self
        return QaThresholds.model_validate({**self.model_dump(), **overrides})


def _overrides_model() -> type[BaseModel]:
    # The same keys, ranges and descriptions, every one optional: one table, no drift.
    fields: dict[str, Any] = {}
    for name, info in QaThresholds.model_fields.items():
        copy = info._copy()  # noqa: SLF001 - pydantic's own way to derive a field
        copy.default = None
        fields[name] = (info.annotation | None, copy)
    return create_model(
        "QaThresholdOverrides",
        __config__=ConfigDict(extra="forbid", allow_inf_nan=False),
        __doc__="Per-request QA thresholds; unset keys keep the server's.",
        **fields,
    )


QaThresholdOverrides = _overrides_model()


def parse_overrides(value: Any) -> Any:
    """A multipart form sends the object as JSON text; decode it (pydantic checks keys)."""
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"qa_thresholds must be a JSON object: {exc.msg}") from None
    return value
