"""JobRecord (database) -> Job (wire) conversion, in one place."""

from __future__ import annotations

from datetime import datetime

from google.protobuf import struct_pb2, timestamp_pb2
from lightbox.v1 import jobs_pb2

from services.jobs.store import JobRecord, WebhookState

STATUS_TO_PROTO = {
    "queued": jobs_pb2.JOB_STATUS_QUEUED,
    "processing": jobs_pb2.JOB_STATUS_PROCESSING,
    "completed": jobs_pb2.JOB_STATUS_COMPLETED,
    "failed": jobs_pb2.JOB_STATUS_FAILED,
    "blocked": jobs_pb2.JOB_STATUS_BLOCKED,
    "canceled": jobs_pb2.JOB_STATUS_CANCELED,
}
PROTO_TO_STATUS = {v: k for k, v in STATUS_TO_PROTO.items()}


def _ts(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value)
    return ts


def job_to_proto(job: JobRecord) -> jobs_pb2.Job:
    params = struct_pb2.Struct()
    params.update(job.params or {})
    msg = jobs_pb2.Job(
        id=job.id,
        account_id=job.account_id,
        operation=job.operation,
        status=STATUS_TO_PROTO[job.status],
        params=params,
        credits_used=job.credits,
        pipeline=list(job.pipeline),
        engines=dict(job.engines or {}),
        estimated_seconds=job.estimated_seconds,
        output_key=job.output_key or "",
        width=job.width or 0,
        height=job.height or 0,
        format=job.format or "",
        processing_ms=job.processing_ms or 0,
        attempts=job.attempts,
        webhook_url=job.webhook_url or "",
        stage=job.stage or "",
    )
    for field, value in (
        ("created_at", job.created_at),
        ("started_at", job.started_at),
        ("completed_at", job.completed_at),
        ("output_expires_at", job.output_expires_at),
    ):
        ts = _ts(value)
        if ts is not None:
            getattr(msg, field).CopyFrom(ts)
    if job.error_code:
        msg.error.CopyFrom(jobs_pb2.JobError(code=job.error_code, message=job.error_message or ""))
    if job.webhook is not None:
        msg.webhook.CopyFrom(webhook_to_proto(job.webhook))
    if job.qa is not None:
        msg.qa.update(job.qa)
    return msg


def webhook_to_proto(state: WebhookState) -> jobs_pb2.Webhook:
    msg = jobs_pb2.Webhook(url=state.url, status=state.status)
    if state.next_attempt_at is not None:
        msg.next_attempt_at.CopyFrom(_ts(state.next_attempt_at))
    for attempt in state.attempts:
        item = msg.attempts.add(
            attempt=attempt.attempt,
            status_code=attempt.status_code or 0,
            error=attempt.error or "",
            duration_ms=attempt.duration_ms or 0,
        )
        item.at.CopyFrom(_ts(attempt.at))
        if attempt.next_attempt_at is not None:
            item.next_attempt_at.CopyFrom(_ts(attempt.next_attempt_at))
    return msg
