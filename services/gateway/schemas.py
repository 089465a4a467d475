"""Request schemas of the public API (field names and ranges of API.md).

Form fields arrive as strings and JSON fields as JSON values; both go through
the same models. Contradictory options are rejected, never silently rewritten."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from services.common import compliance
from services.common.qa_thresholds import QaThresholdOverrides, parse_overrides

_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")
_ASPECT = re.compile(r"^\s*(\d{1,5})\s*:\s*(\d{1,5})(\s*\(.*\))?\s*$")
_SIZE = re.compile(r"^(\d{1,5})x(\d{1,5})$")
MAX_OUTPUT_SIDE = 4096
# Upscaled results are bounded separately: a 2048 px input at 4x is the largest.
MAX_UPSCALED_SIDE = 8192


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

# Marketplace rule presets of product-photo (services/common/compliance.py).
Compliance = StrEnum("Compliance", [(name, name) for name in compliance.NAMES])  # type: ignore[misc]


class FieldError(ValueError):
    """A cross-field problem blamed on one field, so that the 422 can name it;
    `code` replaces invalid_parameter where the API documents its own (e.g.
    virtual try-on's invalid_category)."""

    def __init__(self, field: str, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.code = code


class GenerateModel(StrEnum):
    sdxl = "sdxl"
    flux_schnell = "flux-schnell"


class _Params(BaseModel):
    # NaN and infinity pass range checks in odd ways and are not JSON: refused.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, allow_inf_nan=False)

    webhook_url: str | None = Field(
        None,
        max_length=2048,
        description="http(s) URL on a public address: POSTed the job body when the job "
        "ends, signed with X-Lightbox-Signature (see Webhooks).",
    )
    qa_thresholds: QaThresholdOverrides | None = Field(  # type: ignore[valid-type]
        None,
        description="Image QA thresholds for this job (a JSON object; on multipart, its JSON "
        'text), e.g. {"max_edge_halo": 0.05}; unset keys keep the server\'s. See README, '
        "Image QA.",
    )

    _qa_thresholds = field_validator("qa_thresholds", mode="before")(parse_overrides)

    def job_params(self) -> dict[str, Any]:
        """The fields the job stores and the worker reads (no webhook, no Nones)."""
        return self.model_dump(mode="json", exclude={"webhook_url"}, exclude_none=True)


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
        description="Background preset (GET /v1/models lists them); "
        "`custom` needs background_prompt.",
    )
    background_prompt: Prompt | None = Field(
        None,
        description="Scene text (required with `custom`); `#RRGGBB` means that solid colour. "
        "A scene only a diffusion model can draw needs SDXL (503 model_unavailable otherwise).",
    )
    shadow_type: ShadowType = Field(ShadowType.soft, description="Shadow under the product.")
    output_format: PhotoFormat = Field(PhotoFormat.jpeg, description="Encoding of the result.")
    image_quality: int = Field(90, ge=10, le=100, description="jpeg/webp quality, 10-100.")
    aspect_ratio: str | None = Field(
        None,
        max_length=64,
        description="W:H between 1:10 and 10:1, e.g. 1:1, 4:5, 16:9; Segmind labels such as "
        "'8:5 (Cinematic View)' are accepted. Default: the input's.",
    )
    output_size: str | None = Field(
        None, max_length=11, description="WxH pixels, 16-4096 a side; wins over aspect_ratio."
    )
    megapixel: float | None = Field(
        None, gt=0, le=16.8, description="Output area in megapixels (with aspect_ratio)."
    )
    scale: float = Field(
        0.8, ge=0.05, le=1.0, description="The subject's longest side as a share of the canvas."
    )
    x: float = Field(50.0, ge=0, le=100, description="Subject centre, % of canvas width.")
    y: float = Field(55.0, ge=0, le=100, description="Subject centre, % of canvas height.")
    padding: float = Field(
        0.0, ge=0, le=0.45, description="Minimum margin around the subject, share of the canvas."
    )
    seed: int | None = Field(None, ge=0, le=2**32 - 1, description="For generated backgrounds.")
    negative_prompt: Prompt | None = Field(None, description="For generated backgrounds.")
    steps: int | None = Field(None, ge=1, le=100, description="Diffusion steps (generated).")
    guidance_scale: float | None = Field(
        None, ge=0, le=30, description="Classifier-free guidance (generated backgrounds)."
    )
    lighting: bool = Field(
        False, description="Relight the subject; needs a relighting model (not offered: 422)."
    )
    lighting_prompt: Prompt | None = Field(None, description="The light, with lighting=true.")
    detail_transfer: bool = Field(False, description="Carry fine detail from the source back.")
    detailer_mode: BlendMode = Field(
        BlendMode.soft_light, description="Blend mode of detail_transfer."
    )
    compliance: Compliance | None = Field(  # type: ignore[valid-type]
        None,
        description="Marketplace main-image rules to meet (amazon-main, google-merchant): sets "
        "the background, fill, size and format the rules need (fields that contradict them "
        "are refused), and the job's qa.compliance checks each rule.",
    )

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
            raise FieldError("background_prompt", "preset 'custom' needs a background_prompt")
        if self.lighting:
            raise FieldError(
                "lighting",
                "lighting (relighting the subject) needs a relighting model, "
                "which this server does not offer; send lighting=false",
            )
        if self.compliance is not None:
            preset = compliance.get(self.compliance.value)
            try:
                fields = compliance.apply(preset, self.model_dump(), set(self.model_fields_set))
            except ValueError as exc:
                raise FieldError(exc.args[0], exc.args[1]) from None
            for name in ("preset", "background_prompt", "scale", "aspect_ratio"):
                setattr(self, name, fields.get(name))
            self.shadow_type = ShadowType(fields["shadow_type"])
            self.output_format = PhotoFormat(fields["output_format"])
        return self


class RemoveBackgroundParams(_Params):
    output_format: CutoutFormat = Field(
        CutoutFormat.png, description="png or webp keep transparency; jpeg needs bg_color."
    )
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
            raise FieldError(
                "output_format", "jpeg has no transparency: send bg_color, or use png/webp"
            )
        if self.mask_only and self.bg_color:
            raise FieldError("bg_color", "mask_only and bg_color contradict each other")
        return self


class ReplaceBackgroundParams(_Params):
    prompt: Prompt | None = Field(None, description="The new scene (alias: scene_prompt)")
    scene_prompt: Prompt | None = None
    preserve_shadow: bool = Field(True, description="Carry the source's own shading over.")
    negative_prompt: Prompt | None = Field(None, description="For generated scenes.")
    seed: int | None = Field(None, ge=0, le=2**32 - 1, description="For generated scenes.")
    output_format: PhotoFormat = Field(PhotoFormat.png, description="Encoding of the result.")

    @model_validator(mode="after")
    def _prompt(self) -> ReplaceBackgroundParams:
        if self.prompt and self.scene_prompt and self.prompt != self.scene_prompt:
            raise FieldError("scene_prompt", "prompt and scene_prompt differ; send one of them")
        self.prompt = self.prompt or self.scene_prompt
        self.scene_prompt = None
        if not self.prompt:
            raise FieldError("prompt", "prompt (or scene_prompt) is required")
        return self


class GenerateParams(_Params):
    model: GenerateModel = Field(GenerateModel.sdxl, description="The text-to-image model.")
    prompt: Prompt = Field(..., min_length=1, description="What to draw.")
    negative_prompt: Prompt | None = Field(None, description="What to keep out.")
    width: int = Field(1024, ge=512, le=1536, multiple_of=8, description="512-1536, multiple of 8.")
    height: int = Field(
        1024, ge=512, le=1536, multiple_of=8, description="512-1536, multiple of 8."
    )
    steps: int | None = Field(None, ge=1, le=100, description="Diffusion steps.")
    guidance_scale: float | None = Field(None, ge=0, le=30, description="Guidance scale.")
    seed: int | None = Field(None, ge=0, le=2**32 - 1, description="For repeatable results.")


class UpscaleParams(_Params):
    scale: int = Field(
        4,
        description="2 or 4; the result must stay within 8192 px a side (else 422).",
        json_schema_extra={"enum": [2, 4]},
    )

    @field_validator("scale")
    @classmethod
    def _two_or_four(cls, value: int) -> int:
        if value not in (2, 4):
            raise ValueError("scale must be 2 or 4")
        return value


class RestoreFaceParams(_Params):
    fidelity: float = Field(
        0.5, ge=0, le=1, description="0 = strongest restoration, 1 = closest to the input."
    )


class RemoveObjectParams(_Params):
    prompt: Prompt | None = Field(
        None,
        description="Names the object to erase (needs a segmentation model); or send `mask`.",
    )

    @model_validator(mode="after")
    def _mask_or_prompt(self, info: ValidationInfo) -> RemoveObjectParams:
        # The mask is a file, not a field: the submit says whether one came.
        has_mask = bool((info.context or {}).get("has_mask"))
        if not has_mask and not self.prompt:
            raise FieldError("mask", "send a mask (white = remove) or a prompt naming the object")
        return self


class SegmindProductPhotoParams(BaseModel):
    """Segmind's ai-product-photography request, mapped onto product-photo."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, allow_inf_nan=False)

    prompt: Prompt | None = Field(None, description="The scene (product-photo background_prompt).")
    lighting_prompt: Prompt | None = Field(None, description="The light, with lighting=true.")
    negative_prompt: Prompt | None = None
    megapixel: float | None = Field(None, gt=0, le=16.8, description="Output area, megapixels.")
    aspect_ratio: str | None = Field(None, max_length=64, description="e.g. '8:5 (Cinematic View)'")
    x_value: float | None = Field(None, ge=0, le=100, description="Subject centre x, %.")
    y_value: float | None = Field(None, ge=0, le=100, description="Subject centre y, %.")
    scale: float | None = Field(None, ge=0.05, le=1.0, description="Subject size share.")
    steps: int | None = Field(None, ge=1, le=100)
    guidance_scale: float | None = Field(None, ge=0, le=30)
    seed: int | None = Field(None, ge=-1, le=2**32 - 1, description="-1 means random.")
    detailer_mode: BlendMode | None = None
    lighting: bool | None = None
    detailtransfer: bool | None = Field(None, description="product-photo detail_transfer.")
    image_format: PhotoFormat | None = Field(None, description="product-photo output_format.")
    image_quality: int | None = Field(None, ge=10, le=100)
    webhook_url: str | None = Field(None, max_length=2048)

    _aspect = field_validator("aspect_ratio")(_check_aspect)

    def native_fields(self) -> dict[str, Any]:
        """The same request in product-photo's own field names."""
        renames = {
            "prompt": "background_prompt",
            "x_value": "x",
            "y_value": "y",
            "detailtransfer": "detail_transfer",
            "image_format": "output_format",
        }
        out: dict[str, Any] = {}
        for name, value in self.model_dump(exclude_none=True).items():
            if name == "seed" and value == -1:
                continue
            out[renames.get(name, name)] = value
        if out.get("background_prompt"):
            out["preset"] = "custom"
        return out


# -- PixelAPI's audio, video and virtual try-on ----------------------------------------


class AudioModel(StrEnum):
    musicgen_small = "musicgen-small"


class VideoResolution(StrEnum):
    p480 = "480p"
    p720 = "720p"


# Try-on garment categories (services/jobs/media/tryon.py CATEGORIES).
TRYON_CATEGORIES = ("upperbody", "lowerbody", "dress")
# Both try-on photos must be at least this many pixels on each side (PixelAPI).
TRYON_MIN_SIDE = 100
Seed = Annotated[int | None, Field(None, ge=0, le=2**32 - 1, description="For repeatable results.")]


class _MediaParams(BaseModel):
    """Fields of the non-image operations: no image QA (their output is not an image)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, allow_inf_nan=False)

    webhook_url: str | None = Field(
        None,
        max_length=2048,
        description="http(s) URL on a public address: POSTed the job body when the job "
        "ends, signed with X-Lightbox-Signature (see Webhooks).",
    )

    def job_params(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"webhook_url"}, exclude_none=True)


class AudioGenerateParams(_MediaParams):
    """Text to music with MusicGen (PixelAPI's POST /v1/audio/generate). The job's
    output_url is a WAV file; poll GET /v1/image/{generation_id}. Credits: 5 up to 15 s,
    10 for 16-30 s by default (GET /v1/models shows the table in force)."""

    prompt: str = Field(..., min_length=3, max_length=500, description="The music, 3-500 chars.")
    duration: float = Field(
        15,
        ge=5,
        le=30,
        description="Seconds, 5-30 (a whole or fractional number); over 15 costs the 16-30 s tier.",
    )
    model: AudioModel = Field(AudioModel.musicgen_small, description="musicgen-small (only).")
    seed: Seed


class VideoGenerateParams(_MediaParams):
    """Text to video with WAN 2.1 (PixelAPI's POST /v1/video/generate): an MP4 at 16 fps,
    832x480 (480p) or 1280x720 (720p). Poll GET /v1/video/{generation_id}. Credits by
    resolution and length: 480p 50, 720p 65 for up to 3 s, plus 5 per started second
    beyond (50-100) by default."""

    prompt: str = Field(..., min_length=1, max_length=2000, description="The scene, 1-2000 chars.")
    duration: float = Field(
        3, ge=1, le=10, description="Seconds, 1-10 (a whole or fractional number)."
    )
    resolution: VideoResolution = Field(
        VideoResolution.p480, description="480p (832x480) or 720p (1280x720)."
    )
    negative_prompt: str | None = Field(None, max_length=2000, description="What to keep out.")
    seed: Seed
    steps: int | None = Field(None, ge=1, le=100, description="Diffusion steps (model default).")
    guidance_scale: float | None = Field(
        None, ge=0, le=30, description="Classifier-free guidance (model default)."
    )


class VirtualTryOnParams(_Params):
    """Dress a person in a garment with CatVTON (PixelAPI's POST /v1/virtual-tryon). Both
    photos as base64 in JSON (a `data:image/...;base64,` prefix is accepted and removed),
    JPEG, PNG or WebP, at least 100 px a side; the person photo not landscape. Poll GET
    /v1/virtual-tryon/jobs/{job_id}: result_image_b64 is a PNG at the person photo's size.
    Credits: 25 by default."""

    person_image: str = Field(
        ..., min_length=1, description="The person photo, base64 (portrait or square)."
    )
    garment_image: str = Field(..., min_length=1, description="The garment photo, base64.")
    category: str = Field(..., description="upperbody, lowerbody or dress.")
    seed: Seed
    steps: int | None = Field(None, ge=1, le=100, description="Diffusion steps (model default).")
    guidance_scale: float | None = Field(
        None, ge=0, le=30, description="Classifier-free guidance (model default)."
    )

    @field_validator("category", mode="before")
    @classmethod
    def _category(cls, value: Any) -> str:
        if not isinstance(value, str) or value.strip() not in TRYON_CATEGORIES:
            raise FieldError(
                "category",
                f"category must be one of {', '.join(TRYON_CATEGORIES)}",
                code="invalid_category",
            )
        return value.strip()

    def job_params(self) -> dict[str, Any]:
        # The photos travel as input blobs, not as job fields.
        return self.model_dump(
            mode="json",
            exclude={"webhook_url", "person_image", "garment_image"},
            exclude_none=True,
        )
