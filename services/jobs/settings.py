"""Settings of the jobs API and the worker (LIGHTBOX_* environment)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode

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
    # Where a worker serves its Prometheus metrics (stage timings); default
    # LIGHTBOX_HTTP_PORT + 6, 0 turns them off.
    worker_metrics_port: int | None = Field(None, ge=0, le=65535)
    # Prompts containing one of these words are blocked and not charged.
    # LIGHTBOX_CONTENT_DENYLIST: a JSON list or comma-separated terms ("" disables it).
    content_denylist: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["nude", "naked", "gore", "beheading", "child abuse"]
    )

    @model_validator(mode="after")
    def _metrics_port(self) -> JobsSettings:
        if self.worker_metrics_port is None:
            self.worker_metrics_port = self.http_port + 6
        return self

    @field_validator("content_denylist", mode="before")
    @classmethod
    def _terms(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            terms = json.loads(text) if text.startswith("[") else text.split(",")
            return [str(t).strip() for t in terms if str(t).strip()]
        return value
