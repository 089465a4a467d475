"""Submitting a job: insert, charge and queue it in one transaction, at most
once per Idempotency-Key.

Owns: `submit` with its two implementations side by side, the SQLite body
(`_submit`, also the specification) and PostgreSQL's one call of
lightbox_submit (migration 0003, `_submit_postgres`), the idempotency
replay and conflict, and purging expired idempotency keys. Must not: claim
or run jobs (queue/), or refund (ledger.py). catalog_store.py's batches write
their items' jobs and charges the same way, with `_INSERT_JOB` and
`_INSERT_LEDGER`: a change to what a submit writes belongs in both.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Json
from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from services.common.errors import InvalidParameter, LightboxError, NotFound
from services.jobs.models import idempotency_keys, jobs
from services.jobs.store.ledger import _INSERT_LEDGER, LedgerMixin, _insufficient_credits
from services.jobs.store.plumbing.sql import _new_id, _utc_row
from services.jobs.store.plumbing.tx import _retry_once
from services.jobs.store.records import (
    STATUS_BLOCKED,
    STATUS_QUEUED,
    TERMINAL_STATUSES,
    WEBHOOK_PENDING,
    JobRecord,
    WebhookState,
    _job_record,
    _to_milli,
)
from services.jobs.store.webhooks import WebhookOutboxMixin


class SubmitMixin(WebhookOutboxMixin, LedgerMixin):
    """Submit and idempotency (see the module docstring)."""

    def submit(
        self,
        *,
        account_id: str,
        operation: str,
        params: dict[str, Any],
        inputs: dict[str, str],
        credits: float,
        pipeline: list[str],
        estimated_seconds: int,
        idempotency_key: str | None = None,
        request_fingerprint: str = "",
        webhook_url: str | None = None,
        max_attempts: int = 3,
        blocked_reason: str | None = None,
    ) -> tuple[JobRecord, bool]:
        """Insert a job and debit its credits in one transaction.

        Returns (job, replayed): replayed is True when the idempotency key was
        already used with the same fingerprint within its window, in which case
        the original job comes back and nothing is charged. A job with
        `blocked_reason` is stored as blocked ("content_blocked") and charges nothing.
        """
        milli = _to_milli(credits, "credits")
        if milli < 0:
            raise InvalidParameter("credits", "credits cannot be negative.")
        if max_attempts < 1:
            raise InvalidParameter("max_attempts", "max_attempts must be at least 1.")
        if idempotency_key is not None and not 1 <= len(idempotency_key) <= 255:
            raise InvalidParameter(
                "Idempotency-Key", "An Idempotency-Key must be 1 to 255 characters."
            )
        if len(request_fingerprint) > 128:
            raise InvalidParameter(
                "request_fingerprint", "request_fingerprint is at most 128 characters."
            )
        job_values = {
            "account_id": account_id,
            "operation": operation,
            "params": dict(params),
            "inputs": dict(inputs),
            "pipeline": list(pipeline),
            "estimated_seconds": estimated_seconds,
            "idempotency_key": idempotency_key,
            "request_fingerprint": request_fingerprint,
            "webhook_url": webhook_url,
            "max_attempts": max_attempts,
        }
        submit = self._submit_postgres if self._dialect == "postgresql" else self._submit
        try:
            return submit(job_values, milli, blocked_reason)
        except (IntegrityError, psycopg.IntegrityError):
            if idempotency_key is None:
                raise
            # Another submit with the same key committed between our lookup and
            # our insert (the key's primary key stopped us); this run finds it.
            return submit(job_values, milli, blocked_reason)

    @_retry_once
    def _submit_postgres(
        self, job_values: dict[str, Any], milli: int, blocked_reason: str | None
    ) -> tuple[JobRecord, bool]:
        """`_submit` as one call of lightbox_submit (migration 0003)."""
        job_id = _new_id()
        now = self._clock()
        v = job_values
        with self._statement(retry_safe=False) as driver:
            try:
                row = (
                    driver.cursor(row_factory=_utc_row)
                    .execute(
                        _SUBMIT_PG,
                        (
                            job_id,
                            v["account_id"],
                            v["operation"],
                            Json(v["params"]),
                            Json(v["inputs"]),
                            Json(v["pipeline"]),
                            v["estimated_seconds"],
                            v["idempotency_key"],
                            v["request_fingerprint"],
                            v["webhook_url"],
                            v["max_attempts"],
                            milli,
                            blocked_reason,
                            now,
                            now + self._idempotency_ttl,
                            now + self._webhook_max_age,
                        ),
                        prepare=True,
                    )
                    .fetchone()
                )
            except psycopg.Error as exc:
                error = _function_error(exc, v["account_id"], milli)
                if error is None:
                    raise
                raise error from exc
        assert row is not None
        record = _job_record(row)
        replayed = record.id != job_id
        if record.webhook_url and replayed:
            # The original job may have ended and had deliveries since.
            with self._tx(write=False) as conn:
                record = self._with_webhooks(conn, [record])[0]
        elif record.webhook_url:
            # Just inserted: no delivery yet. A job blocked at submit has its
            # outbox row, due now (as _load_webhooks would report it).
            due = record.created_at if record.status in TERMINAL_STATUSES else None
            record = dataclasses.replace(
                record, webhook=WebhookState(record.webhook_url, WEBHOOK_PENDING, [], due)
            )
        return record, replayed

    @_retry_once
    def _submit(
        self, job_values: dict[str, Any], milli: int, blocked_reason: str | None
    ) -> tuple[JobRecord, bool]:
        account_id = job_values["account_id"]
        key = job_values["idempotency_key"]
        with self._tx() as conn:
            now = self._clock()
            self._lock_account(conn, account_id)
            if key is not None:
                replay = self._idempotent_replay(conn, account_id, key, job_values, now)
                if replay is not None:
                    return replay, True
            job_id = _new_id()
            values = {
                **job_values,
                "id": job_id,
                "status": STATUS_QUEUED,
                "credits_milli": milli,
                "engines": {},
                "created_at": now,
                "attempts": 0,
                "attempt_errors": [],
                "run_after": now,
            }
            if blocked_reason is not None:
                values.update(
                    status=STATUS_BLOCKED,
                    credits_milli=0,
                    error_code="content_blocked",
                    error_message=blocked_reason,
                    completed_at=now,
                )
            else:
                available = self._balance_milli(conn, account_id)
                if available < milli:
                    raise _insufficient_credits(milli, available)
            inserted = conn.execute(_INSERT_JOB, values).one()
            if values["credits_milli"]:
                conn.execute(
                    _INSERT_LEDGER,
                    {
                        "account_id": account_id,
                        "job_id": job_id,
                        "delta_milli": -milli,
                        "reason": "charge",
                        "created_at": now,
                    },
                )
            if key is not None:
                conn.execute(
                    insert(idempotency_keys).values(
                        account_id=account_id,
                        key=key,
                        job_id=job_id,
                        request_fingerprint=job_values["request_fingerprint"],
                        created_at=now,
                        expires_at=now + self._idempotency_ttl,
                    )
                )
            if values["status"] == STATUS_QUEUED:
                self._event(conn, job_id, STATUS_QUEUED, now, attempt=0)
                self._notify(conn)
            else:
                self._event(conn, job_id, STATUS_BLOCKED, now, attempt=0, detail="content_blocked")
                self._enqueue_webhook(conn, job_id, account_id, job_values["webhook_url"], now)
            return self._with_webhooks(conn, [_job_record(inserted)])[0], False

    def _idempotent_replay(
        self, conn: Connection, account_id: str, key: str, job_values: dict[str, Any], now: datetime
    ) -> JobRecord | None:
        row = conn.execute(
            select(idempotency_keys).where(
                idempotency_keys.c.account_id == account_id, idempotency_keys.c.key == key
            )
        ).first()
        if row is None:
            return None
        if row.expires_at <= now:
            conn.execute(
                delete(idempotency_keys).where(
                    idempotency_keys.c.account_id == account_id, idempotency_keys.c.key == key
                )
            )
            return None
        if row.request_fingerprint != job_values["request_fingerprint"]:
            raise _idempotency_conflict(row.job_id)
        return self._with_webhooks(conn, [self._load_job(conn, row.job_id)])[0]

    @_retry_once
    def purge_expired_idempotency_keys(self) -> int:
        """Delete idempotency keys past their window; returns how many. Expired
        keys are already ignored, this only reclaims space."""
        with self._tx() as conn:
            return conn.execute(
                delete(idempotency_keys).where(idempotency_keys.c.expires_at <= self._clock())
            ).rowcount


_INSERT_JOB = insert(jobs).returning(*jobs.c)

# The PostgreSQL functions of migrations 0003 and 0004, run through the driver (see
# JobStore._statement); parameters are positional.
_SUBMIT_PG = (
    "SELECT * FROM lightbox_submit(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)


def _function_error(exc: psycopg.Error, account_id: str, milli: int) -> LightboxError | None:
    """The store's exception for an error lightbox_submit raised on purpose."""
    state = exc.sqlstate
    detail = exc.diag.message_detail or ""
    if state == "LB404":
        return NotFound(f"No account with id {account_id!r}.")
    if state == "LB402":
        return _insufficient_credits(milli, int(detail))
    if state == "LB409":
        return _idempotency_conflict(detail)
    return None


def _idempotency_conflict(job_id: str) -> LightboxError:
    return LightboxError(
        "This Idempotency-Key was already used with a different request.",
        code="idempotency_conflict",
        guidance="Send a new Idempotency-Key for a new request, or resend the original "
        "request unchanged to get its job.",
        extra={"job_id": job_id},
    )
