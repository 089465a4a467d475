"""Settings of the jobs API and the worker (LIGHTBOX_* environment)."""

from __future__ import annotations

from pydantic import Field

from services.common.settings import CommonSettings


class JobsSettings(CommonSettings):
    # A worker holds a job for this long without a heartbeat before another may take it.
    lease_seconds: float = Field(30.0, gt=1)
    heartbeat_seconds: float = Field(5.0, gt=0.1)
    max_attempts: int = Field(3, ge=1, le=20)
    retry_base_seconds: float = Field(1.0, ge=0)
    output_ttl_seconds: float = Field(24 * 3600, gt=0)
    # How long one Triton inference may take before the stage is treated as failed (transient).
    triton_timeout_seconds: float = Field(300.0, gt=0)
    compositor_timeout_seconds: float = Field(120.0, gt=0)
    # Concurrent pipelines in one worker process.
    worker_threads: int = Field(1, ge=1, le=64)
    # Prompts containing one of these words are blocked and not charged.
    content_denylist: list[str] = Field(
        default_factory=lambda: ["nude", "naked", "gore", "beheading", "child abuse"]
    )
