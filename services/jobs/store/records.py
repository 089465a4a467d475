"""What the store hands out: the record dataclasses, the state names they carry,
and the conversions from a table row (and from milli-credits) to them.

Owns: AccountRecord, ApiKeyRecord, LedgerMismatch, JobRecord, JobEvent,
WebhookState, WebhookAttempt, WebhookTask; the job and webhook status names;
credits <-> milli-credits. Must not: touch the database (no engine, no
connection, no SQL); every other part of the store imports this one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Row

from services.common.errors import InvalidParameter

STATUS_QUEUED = "queued"
STATUS_PROCESSING = "processing"
STATUS_COMPLETED = "completed"
STATUS_FAILED = "failed"
STATUS_BLOCKED = "blocked"
STATUS_CANCELED = "canceled"

TERMINAL_STATUSES = frozenset({STATUS_COMPLETED, STATUS_FAILED, STATUS_BLOCKED, STATUS_CANCELED})

WEBHOOK_PENDING = "pending"
WEBHOOK_DELIVERED = "delivered"
WEBHOOK_FAILED = "failed"

MILLI_PER_CREDIT = 1000


@dataclass(frozen=True)
class AccountRecord:
    id: str
    name: str
    plan: str
    rate_limit_per_minute: int
    allowed_operations: list[str]  # empty = every operation
    webhook_secret: str
    max_concurrent_jobs: int


@dataclass(frozen=True)
class LedgerMismatch:
    account_id: str
    balance: float
    ledger_sum: float


@dataclass(frozen=True)
class ApiKeyRecord:
    id: str
    account_id: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True)
class WebhookAttempt:
    attempt: int
    at: datetime
    dispatcher: str
    duration_ms: int | None
    status_code: int | None  # None: no HTTP answer (see error)
    error: str | None
    next_attempt_at: datetime | None


@dataclass(frozen=True)
class WebhookState:
    url: str
    status: str  # pending | delivered | failed
    attempts: list[WebhookAttempt]
    next_attempt_at: datetime | None = None


@dataclass(frozen=True)
class WebhookTask:
    """One claimed delivery attempt: what to send, where, and the key to sign it."""

    job: JobRecord
    url: str
    attempt: int
    secret: str


@dataclass(frozen=True)
class JobEvent:
    at: datetime
    status: str
    attempt: int
    worker: str | None
    detail: str | None


@dataclass(frozen=True)
class JobRecord:
    id: str
    account_id: str
    operation: str
    status: str  # queued | processing | completed | failed | blocked | canceled
    params: dict[str, Any]
    inputs: dict[str, str]  # role -> blob key
    # Debited at submit (0 for a job blocked at submit); `refunded_at` says
    # whether it came back.
    credits: float
    pipeline: list[str]
    engines: dict[str, str]
    estimated_seconds: int
    created_at: datetime
    # When the first attempt started.
    started_at: datetime | None
    completed_at: datetime | None
    output_key: str | None
    output_expires_at: datetime | None
    width: int | None
    height: int | None
    format: str | None
    processing_ms: int | None
    error_code: str | None
    error_message: str | None
    attempts: int
    max_attempts: int
    stage: str | None
    webhook_url: str | None
    idempotency_key: str | None
    # One {"attempt", "code", "message", "at"} per failed attempt.
    attempt_errors: list[dict[str, Any]]
    refunded_at: datetime | None = None
    # Queue state: who holds the job (the last holder, once it is terminal),
    # until when, and when a queued job may next run.
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    run_after: datetime | None = None
    # Retention: when the input blobs / the output blob were deleted.
    inputs_purged_at: datetime | None = None
    output_purged_at: datetime | None = None
    # The webhook's outbox state, where the read loaded it (get, list_jobs,
    # cancel); None otherwise or when the job has no webhook_url.
    webhook: WebhookState | None = None
    # Image QA of the output (services/jobs/qa_review.py), once graded.
    qa: dict[str, Any] | None = None


def _to_milli(credits: float, field: str) -> int:
    if not math.isfinite(credits):
        raise InvalidParameter(field, f"{field} must be a finite number.")
    return round(credits * MILLI_PER_CREDIT)


def _credits(milli: int) -> float:
    return milli / MILLI_PER_CREDIT


def _account_record(row: Row[Any]) -> AccountRecord:
    return AccountRecord(
        id=row.id,
        name=row.name,
        plan=row.plan,
        rate_limit_per_minute=row.rate_limit_per_minute,
        allowed_operations=list(row.allowed_operations or []),
        webhook_secret=row.webhook_secret,
        max_concurrent_jobs=row.max_concurrent_jobs,
    )


def _key_record(row: Row[Any]) -> ApiKeyRecord:
    return ApiKeyRecord(
        id=row.id,
        account_id=row.account_id,
        prefix=row.prefix,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


def _job_record(row: Any) -> JobRecord:
    return JobRecord(
        id=row.id,
        account_id=row.account_id,
        operation=row.operation,
        status=row.status,
        params=dict(row.params or {}),
        inputs=dict(row.inputs or {}),
        credits=_credits(row.credits_milli),
        pipeline=list(row.pipeline or []),
        engines=dict(row.engines or {}),
        estimated_seconds=row.estimated_seconds,
        created_at=row.created_at,
        started_at=row.started_at,
        completed_at=row.completed_at,
        output_key=row.output_key,
        output_expires_at=row.output_expires_at,
        width=row.width,
        height=row.height,
        format=row.format,
        processing_ms=row.processing_ms,
        error_code=row.error_code,
        error_message=row.error_message,
        attempts=row.attempts,
        max_attempts=row.max_attempts,
        stage=row.stage,
        webhook_url=row.webhook_url,
        idempotency_key=row.idempotency_key,
        attempt_errors=[dict(e) for e in row.attempt_errors or []],
        refunded_at=row.refunded_at,
        lease_owner=row.lease_owner,
        lease_expires_at=row.lease_expires_at,
        run_after=row.run_after,
        inputs_purged_at=row.inputs_purged_at,
        output_purged_at=row.output_purged_at,
        qa=dict(row.qa) if row.qa else None,
    )
