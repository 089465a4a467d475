"""Job (wire) -> the public bodies of API.md: the /v1 job body and the /v2
(Segmind-style) submit, status and result bodies. The pydantic models here
document those bodies in OpenAPI; responses are built as plain dicts."""

from __future__ import annotations

import base64
import time
from typing import Any, Literal

from google.protobuf import json_format
from lightbox.v1 import jobs_pb2
from pydantic import BaseModel, ConfigDict, Field

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
TERMINAL_PROTO = {
    jobs_pb2.JOB_STATUS_COMPLETED,
    jobs_pb2.JOB_STATUS_FAILED,
    jobs_pb2.JOB_STATUS_BLOCKED,
    jobs_pb2.JOB_STATUS_CANCELED,
}
REFUNDED = {"failed", "blocked", "canceled"}
# Segmind's four states: every way of not completing is FAILED there.
V2_STATUS = {
    "queued": "QUEUED",
    "processing": "PROCESSING",
    "completed": "COMPLETED",
    "failed": "FAILED",
    "blocked": "FAILED",
    "canceled": "FAILED",
}


def _time(ts: Any) -> str | None:
    if not ts.seconds and not ts.nanos:
        return None
    return ts.ToJsonString()


def status_of(job: jobs_pb2.Job) -> str:
    return STATUS.get(job.status, "queued")


def output_url(job: jobs_pb2.Job, base_url: str, secret: str) -> str:
    expires = job.output_expires_at.seconds or int(time.time()) + 86400
    return base_url.rstrip("/") + signing.signed_path(secret, job.output_key, expires)


def output_expired(job: jobs_pb2.Job, now: float | None = None) -> bool:
    seconds = job.output_expires_at.seconds
    return bool(seconds) and (time.time() if now is None else now) > seconds


def job_body(job: jobs_pb2.Job, base_url: str, secret: str) -> dict[str, Any]:
    status = status_of(job)
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
        body.update(
            output_url=output_url(job, base_url, secret),
            output_expires_at=_time(job.output_expires_at),
            width=job.width or None,
            height=job.height or None,
            format=job.format,
            processing_ms=job.processing_ms,
            completed_at=_time(job.completed_at),
        )
        # Image QA grades images only: null for audio and video.
        body["qa"] = qa_body(job)
    body.update(media_fields(job, body["parameters"]))
    if job.HasField("error") and job.error.code:
        body["error"] = {"error": job.error.code, "message": job.error.message}
        body["completed_at"] = _time(job.completed_at)
    if job.webhook_url:
        body["webhook_url"] = job.webhook_url
    if job.HasField("webhook"):
        body["webhook"] = webhook_body(job.webhook)
    return body


def media_fields(job: jobs_pb2.Job, params: dict[str, Any]) -> dict[str, Any]:
    """The fields PixelAPI's audio, video and try-on answers carry beside the job body:
    the requested model and length (audio), length and resolution (video), job_id and
    category (try-on)."""
    if job.operation == "audio-generate":
        return {
            "model": params.get("model", "musicgen-small"),
            "duration": _numbers(params.get("duration")),
        }
    if job.operation == "video-generate":
        return {
            "duration": _numbers(params.get("duration")),
            "resolution": params.get("resolution", "480p"),
        }
    if job.operation == "virtual-tryon":
        return {"job_id": job.id, "category": params.get("category")}
    return {}


def tryon_body(job: jobs_pb2.Job, base_url: str, secret: str, png: bytes | None) -> dict[str, Any]:
    """GET /v1/virtual-tryon/jobs/{job_id}: the job body plus PixelAPI's fields, the
    result PNG as base64 (`png`, once completed) and the time it took."""
    body = job_body(job, base_url, secret)
    body["result_image_b64"] = base64.b64encode(png).decode("ascii") if png is not None else None
    body["inference_time_ms"] = job.processing_ms if body["status"] == "completed" else None
    return body


def _numbers(value: Any) -> Any:
    # A Struct carries every number as a double: whole ones (pixel sizes, counts) go
    # back to int so that 1000 reads 1000, not 1000.0.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_numbers(v) for v in value]
    return value


def qa_body(job: jobs_pb2.Job) -> dict[str, Any] | None:
    """The `qa` field of a completed job: {"scores", "needs_review", "reasons",
    "compliance"} (README "Image QA"); None for jobs completed before QA ran."""
    if not job.HasField("qa"):
        return None
    return _numbers(json_format.MessageToDict(job.qa))


def webhook_body(webhook: jobs_pb2.Webhook) -> dict[str, Any]:
    """The `webhook` field: {"url", "status": pending|delivered|failed, "attempts",
    "next_attempt_at"}, one attempt per POST with its answer or error."""
    return {
        "url": webhook.url,
        "status": webhook.status,
        "attempts": [
            {
                "attempt": a.attempt,
                "at": _time(a.at),
                "status_code": a.status_code or None,
                "error": a.error or None,
                "duration_ms": a.duration_ms,
                "next_attempt_at": _time(a.next_attempt_at),
            }
            for a in webhook.attempts
        ],
        "next_attempt_at": _time(webhook.next_attempt_at),
    }


def v2_links(job_id: str, base_url: str) -> dict[str, str]:
    base = base_url.rstrip("/")
    return {
        "status_url": f"{base}/v2/requests/{job_id}/status",
        "response_url": f"{base}/v2/requests/{job_id}",
    }


def v2_status_body(job: jobs_pb2.Job, base_url: str) -> dict[str, Any]:
    status = status_of(job)
    body: dict[str, Any] = {"request_id": job.id, "status": V2_STATUS[status]}
    body.update(v2_links(job.id, base_url))
    if V2_STATUS[status] == "FAILED":
        # Segmind's SDK raises InferenceFailed(detail=body["error"]) from this body.
        body["error"] = job.error.message or f"The request was {status}."
    body["metrics"] = (
        {"inference_time": round(job.processing_ms / 1000, 3)} if status == "completed" else {}
    )
    return body


def v2_result_body(job: jobs_pb2.Job, base_url: str, secret: str) -> dict[str, Any]:
    """The result of a COMPLETED request (callers check the status first)."""
    url = output_url(job, base_url, secret)
    return {
        "request_id": job.id,
        "status": "COMPLETED",
        "output": url,
        "output_url": url,
        "output_expires_at": _time(job.output_expires_at),
        "image_format": job.format,
        "format": job.format,
        "width": job.width or None,
        "height": job.height or None,
        "credits_used": job.credits_used,
        "engines": dict(job.engines),
        "metrics": {"inference_time": round(job.processing_ms / 1000, 3)},
        "qa": qa_body(job),
    }


# -- documentation models (OpenAPI) -------------------------------------------------


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="allow")

    error: str = Field(..., description="Machine-readable code, e.g. invalid_parameter.")
    message: str = Field(..., description="What went wrong, in a sentence.")
    guidance: str = Field(..., description="What to do about it.")
    field: str | None = Field(None, description="The request field at fault, when one is.")


class ErrorBody(BaseModel):
    detail: ErrorDetail


class SegmindErrorBody(ErrorBody):
    """An error on a Segmind-shaped route: API.md's body plus the top-level
    `error` string that Segmind's SDK reads."""

    model_config = ConfigDict(extra="allow")

    error: str = Field(..., description="The message again, where Segmind's clients look.")
    request_id: str | None = Field(None, description="The request, when the error is its own.")
    status: str | None = Field(None, description="FAILED, or QUEUED/PROCESSING on a 504.")


class JobError(BaseModel):
    error: str
    message: str


class JobBody(BaseModel):
    model_config = ConfigDict(extra="allow")

    generation_id: str = Field(..., description="The job id (PixelAPI's name for it).")
    id: str
    status: Literal["queued", "processing", "completed", "failed", "blocked", "canceled"]
    operation: str
    credits_used: float = Field(..., description="0 once refunded (failed, blocked, canceled).")
    pipeline: list[str] = Field(..., description="Stages that ran (or will run).")
    engines: dict[str, str] = Field(..., description="What served each stage.")
    estimated_seconds: int
    created_at: str | None
    parameters: dict[str, Any] = Field(..., description="The validated request fields.")
    attempts: int
    credits_refunded: float | None = None
    stage: str | None = Field(None, description="The stage running now (processing).")
    started_at: str | None = None
    output_url: str | None = Field(
        None, description="Signed, expiring link to the result; needs no API key."
    )
    output_expires_at: str | None = None
    width: int | None = None
    height: int | None = None
    format: str | None = None
    processing_ms: int | None = None
    completed_at: str | None = None
    error: JobError | None = None
    webhook_url: str | None = None
    qa: dict[str, Any] | None = Field(
        None,
        description="Image QA of a completed job: scores, needs_review, reasons "
        "[{code, message}] and compliance (README, Image QA); null for audio and video.",
    )
    model: str | None = Field(None, description="audio-generate: the music model.")
    duration: float | None = Field(
        None, description="audio-generate, video-generate: the requested seconds."
    )
    resolution: str | None = Field(None, description="video-generate: 480p or 720p.")
    job_id: str | None = Field(None, description="virtual-tryon: the job id (PixelAPI's name).")
    category: str | None = Field(None, description="virtual-tryon: the garment category.")


class TryOnJobBody(JobBody):
    result_image_b64: str | None = Field(
        ..., description="The result PNG, base64 (no data: prefix), once completed."
    )
    inference_time_ms: int | None = Field(..., description="Processing time, once completed.")


class UsageBody(BaseModel):
    jobs: list[JobBody]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page.")


class BalanceBody(BaseModel):
    credits_remaining: float
    plan: str
    rate_limit_per_minute: int


class V2SubmitBody(BaseModel):
    request_id: str
    status: Literal["QUEUED", "PROCESSING", "COMPLETED", "FAILED"]
    status_url: str
    response_url: str
    error: str | None = Field(None, description="Why, when FAILED (blocked and canceled too).")


class V2StatusBody(V2SubmitBody):
    metrics: dict[str, float] = Field(..., description="inference_time (s) once COMPLETED.")


class V2ResultBody(BaseModel):
    model_config = ConfigDict(extra="allow")

    request_id: str
    status: Literal["COMPLETED"]
    output: str = Field(..., description="Signed, expiring link to the result file.")
    output_url: str
    output_expires_at: str | None
    image_format: str = Field(..., description="png/jpeg/webp; wav for audio, mp4 for video.")
    format: str
    width: int | None = Field(..., description="Pixels; null for audio.")
    height: int | None
    credits_used: float
    engines: dict[str, str]
    metrics: dict[str, float]
    qa: dict[str, Any] | None = Field(None, description="Image QA, as on the /v1 job body.")
