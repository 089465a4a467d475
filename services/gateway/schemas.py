"""Request schemas of the public API (field names and ranges of API.md).

Form fields arrive as strings and JSON fields as JSON values; both go through
the same models. Contradictory options are rejected, never silently rewritten."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")
_ASPECT = re.compile(r"^\s*(\d{1,5})\s*:\s*(\d{1,5})(\s*\(.*\))?\s*$")
_SIZE = re.compile(r"^(\d{1,5})x(\d{1,5})$")
MAX_OUTPUT_SIDE = 4096


class ShadowType(StrEnum):
    soft = "soft"
    hard = "hard"
    natural = "natural"
    floating = "floating"
    none = "none"


class PhotoFormat(StrEnum):
    jpeg = "jpeg"
    png = "png"
    webp = "webp"


class CutoutFormat(StrEnum):
    png = "png"
    webp = "webp"
    jpeg = "jpeg"


class BlendMode(StrEnum):
    add = "add"
    multiply = "multiply"
    screen = "screen"
    overlay = "overlay"
    soft_light = "soft_light"
    hard_light = "hard_light"
    color_dodge = "color_dodge"
    color_burn = "color_burn"
    difference = "difference"
    exclusion = "exclusion"
    lighten = "lighten"
    darken = "darken"


Prompt = Annotated[str, Field(max_length=2000)]


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    webhook_url: str | None = Field(
        None, max_length=2048, description="POSTed the job body when it ends (see Webhooks)."
    )

    def job_params(self) -> dict:
        """The fields the job stores and the worker reads (no webhook, no Nones)."""
        data = self.model_dump(mode="json", exclude={"webhook_url"}, exclude_none=True)
        return data


def _check_aspect(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    m = _ASPECT.match(value)
    if not m or int(m.group(1)) == 0 or int(m.group(2)) == 0:
        raise ValueError("aspect_ratio must be W:H with positive integers, e.g. 4:5")
    w, h = int(m.group(1)), int(m.group(2))
    if max(w / h, h / w) > 10:
        raise ValueError("aspect_ratio must be between 1:10 and 10:1")
    return f"{w}:{h}"


class ProductPhotoParams(_Params):
    preset: str = Field(
        "white-studio",
        max_length=64,
        description="Background preset (GET /v1/models lists them); `custom` needs background_prompt.",
    )
    background_prompt: Prompt | None = Field(
        None, description="Scene text; `#RRGGBB` means that solid colour."
    )
    shadow_type: ShadowType = ShadowType.soft
    output_format: PhotoFormat = PhotoFormat.jpeg
    image_quality: int = Field(90, ge=10, le=100)
    aspect_ratio: str | None = Field(None, max_length=64, description="W:H, e.g. 1:1, 4:5, 16:9")
    output_size: str | None = Field(None, max_length=11, description="WxH pixels, <= 4096 a side")
    megapixel: float | None = Field(None, gt=0, le=16.8)
    scale: float = Field(0.8, ge=0.05, le=1.0)
    x: float = Field(50.0, ge=0, le=100)
    y: float = Field(55.0, ge=0, le=100)
    seed: int | None = Field(None, ge=0, le=2**32 - 1)
    negative_prompt: Prompt | None = None
    steps: int | None = Field(None, ge=1, le=100)
    guidance_scale: float | None = Field(None, ge=0, le=30)
    lighting: bool = False
    detail_transfer: bool = False
    detailer_mode: BlendMode = BlendMode.soft_light

    _aspect = field_validator("aspect_ratio")(_check_aspect)

    @field_validator("output_size")
    @classmethod
    def _size(cls, value: str | None) -> str | None:
        if not value:
            return None
        m = _SIZE.match(value.lower())
        if not m:
            raise ValueError("output_size must be WxH, e.g. 2048x2048")
        w, h = int(m.group(1)), int(m.group(2))
        if not (16 <= w <= MAX_OUTPUT_SIDE and 16 <= h <= MAX_OUTPUT_SIDE):
            raise ValueError(f"output_size sides must be between 16 and {MAX_OUTPUT_SIDE}")
        return f"{w}x{h}"

    @model_validator(mode="after")
    def _consistent(self) -> ProductPhotoParams:
        if self.preset == "custom" and not self.background_prompt:
            raise ValueError("preset 'custom' needs a background_prompt")
        if self.lighting:
            raise ValueError(
                "lighting (relighting the subject) needs a relighting model, "
                "which this server does not offer; send lighting=false"
            )
        return self


class RemoveBackgroundParams(_Params):
    output_format: CutoutFormat = CutoutFormat.png
    bg_color: str | None = Field(None, description="#RRGGBB: flatten onto this colour")
    crop: bool = Field(False, description="Trim to the subject")
    mask_only: bool = Field(False, description="Return the alpha mask as a greyscale image")

    @field_validator("bg_color")
    @classmethod
    def _hex(cls, value: str | None) -> str | None:
        if value and not _HEX.match(value):
            raise ValueError("bg_color must be #RRGGBB")
        return value or None

    @model_validator(mode="after")
    def _consistent(self) -> RemoveBackgroundParams:
        if self.output_format == CutoutFormat.jpeg and not (self.bg_color or self.mask_only):
            raise ValueError("jpeg has no transparency: send bg_color, or use png/webp")
        if self.mask_only and self.bg_color:
            raise ValueError("mask_only and bg_color contradict each other")
        return self


class ReplaceBackgroundParams(_Params):
    prompt: Prompt | None = Field(None, description="The new scene (alias: scene_prompt)")
    scene_prompt: Prompt | None = None
    preserve_shadow: bool = True
    negative_prompt: Prompt | None = None
    seed: int | None = Field(None, ge=0, le=2**32 - 1)
    output_format: PhotoFormat = PhotoFormat.png

    @model_validator(mode="after")
    def _prompt(self) -> ReplaceBackgroundParams:
        if self.prompt and self.scene_prompt and self.prompt != self.scene_prompt:
            raise ValueError("prompt and scene_prompt differ; send one of them")
        self.prompt = self.prompt or self.scene_prompt
        self.scene_prompt = None
        if not self.prompt:
            raise ValueError("prompt (or scene_prompt) is required")
        return self
