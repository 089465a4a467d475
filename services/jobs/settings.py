"""Settings of the jobs API and the worker (LIGHTBOX_* environment)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode

from services.common.qa_thresholds import QaThresholds
from services.common.settings import CommonSettings


class JobsSettings(CommonSettings):
    # A worker holds a job for this long without a heartbeat before another may take it.
    lease_seconds: float = Field(30.0, gt=1)
    heartbeat_seconds: float = Field(5.0, gt=0.1)
    max_attempts: int = Field(3, ge=1, le=20)
    retry_base_seconds: float = Field(1.0, ge=0)
    # How long an output stays downloadable (its link's expiry); retention
    # deletes it then. Per API flavour or operation it may differ (JSON
    # objects, seconds); the most specific entry wins: "v2:upscale", then
    # "v2", then "upscale". See services/jobs/retention.py.
    output_ttl_seconds: float = Field(24 * 3600, gt=0)
    output_ttl_overrides: dict[str, float] = Field(default_factory=lambda: {"v2": 3600.0})
    # Retention passes in each worker process; 0 runs none there.
    retention_interval_seconds: float = Field(300.0, ge=0)
    # Input blobs of a job go this long after it ended.
    input_grace_seconds: float = Field(600.0, ge=0)
    # Job rows (with their events and webhook records) go this long after
    # the job ended; ledger rows stay. 0 keeps job rows forever.
    job_retention_seconds: float = Field(30 * 24 * 3600, ge=0)
    # An output blob no job refers to (its worker died between storing and
    # recording it) is deleted once it is this old.
    orphan_min_age_seconds: float = Field(3600.0, gt=0)
    # Webhook dispatcher threads in each worker process; 0 sends none there.
    webhook_threads: int = Field(2, ge=0, le=32)
    # One delivery attempt: connect, send and the receiver's answer.
    webhook_timeout_seconds: float = Field(10.0, gt=0, le=60)
    # Retry n waits base * 2**(n-1) seconds (times 1-1.25), at most max; no
    # attempt starts more than 24 h after the job ended.
    webhook_retry_base_seconds: float = Field(5.0, gt=0)
    webhook_retry_max_seconds: float = Field(3600.0, gt=0)
    # How often an idle dispatcher looks for due deliveries.
    webhook_poll_seconds: float = Field(0.5, gt=0)
    # As the gateway's: webhook bodies carry its signed output links.
    signing_secret: str = ""
    public_base_url: str = ""
    # Tests only: lets webhook_url reach loopback addresses.
    allow_loopback_urls: bool = False
    # How long one Triton inference may take before the stage is treated as failed (transient).
    triton_timeout_seconds: float = Field(300.0, gt=0)
    compositor_timeout_seconds: float = Field(120.0, gt=0)
    # Concurrent pipelines in one worker process.
    worker_threads: int = Field(1, ge=1, le=64)
    # Where a worker serves its Prometheus metrics (stage timings); default
    # LIGHTBOX_HTTP_PORT + 6, 0 turns them off.
    worker_metrics_port: int | None = Field(None, ge=0, le=65535)
    # When an output needs review (LIGHTBOX_QA_THRESHOLDS: a JSON object of the keys
    # of services/common/qa_thresholds.py); a submit's qa_thresholds overrides them.
    qa_thresholds: QaThresholds = Field(default_factory=QaThresholds)
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
