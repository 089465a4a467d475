"""Settings of the compositor service (LIGHTBOX_* environment).

Only operational knobs live here; the look of each shadow type and preset is a
named table in its own module (`shadows.SHADOW_STYLES`, `presets.PRESETS`)."""

from __future__ import annotations

from pydantic import Field

from services.common.settings import CommonSettings


class CompositorSettings(CommonSettings):
    # Compose is CPU-bound numpy/OpenCV that mostly releases the GIL, so a few
    # threads per core keep the cores busy without thrashing memory.
    compositor_workers: int = Field(4, ge=1, le=64)
    # Largest canvas side, and the default canvas's long side (the input's, capped).
    max_canvas_side: int = Field(4096, ge=64, le=16384)
    default_long_side: int = Field(2048, ge=64, le=16384)
    # Largest accepted input side (subject, source, background image).
    max_input_side: int = Field(8192, ge=64, le=32768)
    # Layout defaults when the request leaves them unset.
    default_scale: float = Field(0.8, ge=0.05, le=1.0)
    default_x: float = Field(50.0, ge=0.0, le=100.0)
    default_y: float = Field(55.0, ge=0.0, le=100.0)
    # Encoding: quality when the request sends 0; PNG favours speed over size.
    default_quality: int = Field(90, ge=10, le=100)
    png_compress_level: int = Field(1, ge=0, le=9)
    webp_method: int = Field(4, ge=0, le=6)
    # Detail transfer: the Gaussian sigma (pixels) separating detail from base.
    detail_sigma_px: float = Field(3.0, gt=0.0, le=64.0)
    # Seconds in-flight RPCs get to finish on SIGTERM.
    shutdown_grace_seconds: float = Field(10.0, ge=0.0)
