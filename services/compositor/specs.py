"""Proto request messages -> validated, typed specs for the pure functions.

All request validation lives here, so every bad field is an InvalidParameter
naming it by its proto path ("layout.aspect_ratio", "shadow.type"), and no
field is silently rewritten: unset means default, contradictions are refused."""

from __future__ import annotations

import numpy as np
from lightbox.v1 import compositor_pb2

from services.common import models
from services.common.errors import InvalidParameter, ModelUnavailable
from services.common.rawimage import from_proto
from services.compositor import prompts
from services.compositor.blend import check_mode
from services.compositor.compose import ComposeSpec
from services.compositor.encode import EncodeOptions, parse_format, parse_quality
from services.compositor.layout import LayoutSpec, Mode, parse_aspect_ratio
from services.compositor.presets import Background
from services.compositor.settings import CompositorSettings
from services.compositor.shadows import shadow_style

MAX_PADDING = 0.45
GENERATIVE_GUIDANCE = (
    models.INSTALL_HINT[models.SDXL_INPAINT]
    + " Or use a preset from ListPresets / GET /v1/models, or a '#RRGGBB' colour."
)


def raw_image(
    msg: compositor_pb2.RawImage, field: str, channels: tuple[int, ...], max_side: int
) -> np.ndarray:
    """A RawImage as uint8 HWC (HW for one channel), checked for channels and size."""
    pixels = from_proto(msg, field)
    c = 1 if pixels.ndim == 2 else pixels.shape[2]
    if c not in channels:
        want = " or ".join(str(n) for n in channels)
        raise InvalidParameter(field, f"{field} has {c} channels, needs {want}")
    if max(msg.width, msg.height) > max_side:
        raise InvalidParameter(
            field, f"{field} is {msg.width}x{msg.height}, over {max_side} px a side"
        )
    return pixels


def layout_spec(msg: compositor_pb2.Layout, settings: CompositorSettings) -> LayoutSpec:
    """Layout message -> LayoutSpec; UNSPECIFIED mode means PLACE."""
    mode = Mode.KEEP if msg.mode == compositor_pb2.LAYOUT_MODE_KEEP else Mode.PLACE
    if msg.mode not in (
        compositor_pb2.LAYOUT_MODE_UNSPECIFIED,
        compositor_pb2.LAYOUT_MODE_PLACE,
        compositor_pb2.LAYOUT_MODE_KEEP,
    ):
        raise InvalidParameter("layout.mode", f"unknown layout mode {msg.mode}")
    if mode is Mode.KEEP:
        for field, is_set in (
            ("aspect_ratio", bool(msg.aspect_ratio.strip())),
            ("output_width", msg.output_width != 0),
            ("output_height", msg.output_height != 0),
            ("megapixel", msg.megapixel != 0),
            ("scale", msg.scale != 0),
            ("padding", msg.padding != 0),
        ):
            if is_set:
                raise InvalidParameter(
                    f"layout.{field}",
                    f"layout.{field} only applies to LAYOUT_MODE_PLACE; KEEP keeps the "
                    "input's canvas and the subject where it was",
                )
        return LayoutSpec(mode=Mode.KEEP)
    if msg.scale != 0 and not 0.05 <= msg.scale <= 1.0:
        raise InvalidParameter("layout.scale", f"scale {msg.scale} is outside 0.05..1")
    for field, value in (("x", msg.x), ("y", msg.y)):
        if value > 100.0:
            raise InvalidParameter(f"layout.{field}", f"{field} {value} is outside 0..100")
    if not 0.0 <= msg.padding <= MAX_PADDING:
        raise InvalidParameter(
            "layout.padding", f"padding {msg.padding} is outside 0..{MAX_PADDING}"
        )
    if msg.megapixel < 0:
        raise InvalidParameter("layout.megapixel", f"megapixel {msg.megapixel} is negative")
    for field, value in (("output_width", msg.output_width), ("output_height", msg.output_height)):
        if value < 0:
            raise InvalidParameter(f"layout.{field}", f"{field} {value} is negative")
        if value > settings.max_canvas_side:
            raise InvalidParameter(
                f"layout.{field}", f"{field} {value} is over {settings.max_canvas_side} px"
            )
    return LayoutSpec(
        mode=Mode.PLACE,
        aspect=parse_aspect_ratio(msg.aspect_ratio),
        output_width=msg.output_width,
        output_height=msg.output_height,
        megapixel=msg.megapixel,
        scale=msg.scale or settings.default_scale,
        x=settings.default_x if msg.x < 0 else msg.x,
        y=settings.default_y if msg.y < 0 else msg.y,
        padding=msg.padding,
    )


def background(msg: compositor_pb2.BackgroundSpec) -> Background:
    """BackgroundSpec -> a drawable Background; ModelUnavailable if the prompt
    needs a generative model. (An attached image is handled by the caller.)"""
    resolved = prompts.resolve(msg.preset, msg.prompt)
    if resolved.background is None:
        raise ModelUnavailable(
            f"background {resolved.description}; no background generation model is deployed",
            guidance=GENERATIVE_GUIDANCE,
        )
    return resolved.background


def encode_options(
    msg: compositor_pb2.EncodeSpec, default_format: str, settings: CompositorSettings
) -> EncodeOptions:
    return EncodeOptions(
        format=parse_format(msg.format, default_format),
        quality=parse_quality(msg.quality, settings.default_quality),
        png_compress_level=settings.png_compress_level,
        webp_method=settings.webp_method,
    )


def compose_request(
    req: compositor_pb2.ComposeRequest, settings: CompositorSettings
) -> tuple[ComposeSpec, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """ComposeRequest -> (spec, subject RGBA, source RGB or None, background image or None)."""
    max_side = settings.max_input_side
    if not req.HasField("subject"):
        raise InvalidParameter("subject", "subject (RGBA) is required")
    subject = raw_image(req.subject, "subject", (4,), max_side)
    source = raw_image(req.source, "source", (3,), max_side) if req.HasField("source") else None

    image = None
    if req.background.HasField("image"):
        image = raw_image(req.background.image, "background.image", (3,), max_side)
        bg = Background("white-studio")
    else:
        bg = background(req.background)

    shadow_name = req.shadow.type.strip().lower() or ("none" if req.preserve_shadow else "soft")
    style = shadow_style(shadow_name)
    if not 0.0 <= req.shadow.opacity <= 1.0:
        raise InvalidParameter("shadow.opacity", f"opacity {req.shadow.opacity} is outside 0..1")
    mode = check_mode(req.detailer_mode.strip().lower() or "soft_light", "detailer_mode")

    spec = ComposeSpec(
        background=bg,
        layout=layout_spec(req.layout, settings),
        shadow=style,
        seed=req.background.seed,
        shadow_opacity=req.shadow.opacity,
        preserve_shadow=req.preserve_shadow,
        detail_transfer=req.detail_transfer,
        detailer_mode=mode,
        decontaminate=not req.disable_decontamination,
        detail_sigma=settings.detail_sigma_px,
        max_canvas_side=settings.max_canvas_side,
        default_long_side=settings.default_long_side,
    )
    return spec, subject, source, image
