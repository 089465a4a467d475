"""Job (wire) -> public job body of API.md."""

from __future__ import annotations

import time
from typing import Any

from google.protobuf import json_format
from lightbox.v1 import jobs_pb2

from services.gateway import signing

STATUS = {
    jobs_pb2.JOB_STATUS_QUEUED: "queued",
    jobs_pb2.JOB_STATUS_PROCESSING: "processing",
    jobs_pb2.JOB_STATUS_COMPLETED: "completed",
    jobs_pb2.JOB_STATUS_FAILED: "failed",
    jobs_pb2.JOB_STATUS_BLOCKED: "blocked",
    jobs_pb2.JOB_STATUS_CANCELED: "canceled",
}
TERMINAL = {"completed", "failed", "blocked", "canceled"}
REFUNDED = {"failed", "blocked", "canceled"}


def _time(ts: Any) -> str | None:
    if not ts.seconds and not ts.nanos:
        return None
    return ts.ToJsonString()


def job_body(job: jobs_pb2.Job, base_url: str, secret: str) -> dict[str, Any]:
    status = STATUS.get(job.status, "queued")
    body: dict[str, Any] = {
        "generation_id": job.id,
        "id": job.id,
        "status": status,
        "operation": job.operation,
        "credits_used": 0.0 if status in REFUNDED else job.credits_used,
        "pipeline": list(job.pipeline),
        "engines": dict(job.engines),
        "estimated_seconds": job.estimated_seconds,
        "created_at": _time(job.created_at),
        "parameters": json_format.MessageToDict(job.params),
        "attempts": job.attempts,
    }
    if status in REFUNDED:
        body["credits_refunded"] = job.credits_used
    if status == "processing":
        body["stage"] = job.stage or None
        body["started_at"] = _time(job.started_at)
    if status == "completed" and job.output_key:
        expires = job.output_expires_at.seconds or int(time.time()) + 86400
        body.update(
            output_url=base_url.rstrip("/") + signing.signed_path(secret, job.output_key, expires),
            output_expires_at=_time(job.output_expires_at),
            width=job.width,
            height=job.height,
            format=job.format,
            processing_ms=job.processing_ms,
            completed_at=_time(job.completed_at),
        )
    if job.HasField("error") and job.error.code:
        body["error"] = {"error": job.error.code, "message": job.error.message}
        body["completed_at"] = _time(job.completed_at)
    if job.webhook_url:
        body["webhook_url"] = job.webhook_url
    return body
