"""What a worker may do with a job it holds: heartbeat, record QA, complete,
fail, block.

Owns: every transition out of `processing` that a lease holder makes, each
conditional on still holding the lease (`_HELD`), with its event, refund and
webhook outbox row in the same transaction; `complete` side by side on
SQLite and as lightbox_complete (migration 0003); the retry back-off;
`_finish` (terminal failure + refund), which claim.py also uses for a job
whose last attempt's lease expired. Must not: take a lease (claim.py) or
act for a worker that lost its lease (those calls change nothing).
"""

from __future__ import annotations

import logging
import random
from datetime import datetime, timedelta
from typing import Any

from psycopg.types.json import Json
from sqlalchemy import and_, bindparam, update
from sqlalchemy.engine import Connection, Row

from services.common.errors import InvalidParameter
from services.jobs.models import jobs
from services.jobs.store.ledger import LedgerMixin
from services.jobs.store.plumbing.sql import _iso
from services.jobs.store.plumbing.tx import _retry_once
from services.jobs.store.records import (
    STATUS_BLOCKED,
    STATUS_COMPLETED,
    STATUS_FAILED,
    STATUS_PROCESSING,
    STATUS_QUEUED,
    JobRecord,
    _job_record,
)
from services.jobs.store.webhooks import WebhookOutboxMixin

log = logging.getLogger(__name__)

# A transient failure is retried after base * 2**(attempt-1) seconds, times a
# random factor in [1, 2) so that jobs failed by one outage do not all return
# at once; the delay never exceeds this cap.
MAX_RETRY_DELAY_SECONDS = 300.0


class LeasesMixin(WebhookOutboxMixin, LedgerMixin):
    """A lease holder's calls (see the module docstring)."""

    @_retry_once
    def heartbeat(
        self, job_id: str, worker_id: str, lease_seconds: float, stage: str | None = None
    ) -> bool:
        """Extend the lease (and record the running stage); False if the lease was lost."""
        if not lease_seconds > 0:
            raise InvalidParameter("lease_seconds", "lease_seconds must be positive.")
        params = {
            "job_id": job_id,
            "worker_id": worker_id,
            "u_expires": self._clock() + timedelta(seconds=lease_seconds),
        }
        if stage is not None:
            params["u_stage"] = stage
        with self._tx(durable=False) as conn:
            statement = _HEARTBEAT if stage is None else _HEARTBEAT_STAGE
            return conn.execute(statement, params).rowcount == 1

    @_retry_once
    def record_qa(self, job_id: str, worker_id: str, qa: dict[str, Any]) -> bool:
        """Store the output's QA on a job `worker_id` still holds, just before its
        completion; False if the lease was lost. Not durable on its own: the
        completion that follows commits durably, and on PostgreSQL its flush covers
        this earlier commit too (a crash between the two re-runs the job anyway)."""
        with self._tx(durable=False) as conn:
            return (
                conn.execute(
                    _RECORD_QA, {"job_id": job_id, "worker_id": worker_id, "u_qa": qa}
                ).rowcount
                == 1
            )

    @_retry_once
    def complete(
        self,
        job_id: str,
        worker_id: str,
        *,
        output_key: str,
        width: int,
        height: int,
        format: str,
        processing_ms: int,
        engines: dict[str, str],
        pipeline: list[str],
        output_ttl_seconds: float,
    ) -> bool:
        """Mark the job completed if `worker_id` still holds its lease; False otherwise."""
        if self._dialect == "postgresql":
            now = self._clock()
            outcome = {
                "output_key": output_key,
                "width": width,
                "height": height,
                "format": format,
                "processing_ms": processing_ms,
                "engines": engines,
                "pipeline": pipeline,
                "output_ttl_seconds": output_ttl_seconds,
            }
            with self._statement(retry_safe=False) as driver:
                row = driver.execute(
                    _COMPLETE_PG, self._completion(job_id, worker_id, now, **outcome), prepare=True
                ).fetchone()
            return bool(row and row[0])
        with self._tx() as conn:
            now = self._clock()
            done = conn.execute(
                _COMPLETE,
                {
                    "job_id": job_id,
                    "worker_id": worker_id,
                    "u_now": now,
                    "u_key": output_key,
                    "u_expires": now + timedelta(seconds=output_ttl_seconds),
                    "u_width": width,
                    "u_height": height,
                    "u_format": format,
                    "u_ms": processing_ms,
                    "u_engines": dict(engines),
                    "u_pipeline": list(pipeline),
                },
            ).first()
            if done is None:
                return False
            self._event(
                conn, job_id, STATUS_COMPLETED, now, attempt=done.attempts, worker=worker_id
            )
            self._enqueue_webhook(conn, job_id, done.account_id, done.webhook_url, now)
            return True

    def _completion(
        self, job_id: str, worker_id: str, now: datetime, **outcome: Any
    ) -> tuple[Any, ...]:
        """lightbox_complete's parameters from `complete`'s keyword arguments."""
        return (
            job_id,
            worker_id,
            now,
            outcome["output_key"],
            now + timedelta(seconds=outcome["output_ttl_seconds"]),
            outcome["width"],
            outcome["height"],
            outcome["format"],
            outcome["processing_ms"],
            Json(dict(outcome["engines"])),
            Json(list(outcome["pipeline"])),
            now + self._webhook_max_age,
        )

    @_retry_once
    def fail(
        self,
        job_id: str,
        worker_id: str,
        *,
        code: str,
        message: str,
        transient: bool,
        retry_base_seconds: float = 1.0,
    ) -> JobRecord:
        """Record a failed attempt. A transient failure with attempts left goes
        back to the queue after a back-off; anything else fails the job and
        refunds it. If `worker_id` no longer holds the lease nothing changes and
        the job is returned as it is (its lease_owner says who holds it)."""
        with self._tx() as conn:
            now = self._clock()
            row = self._lock_job(conn, job_id)
            if row.status != STATUS_PROCESSING or row.lease_owner != worker_id:
                log.warning("fail(%s) by %s ignored: lease not held", job_id, worker_id)
                return _job_record(row)
            attempt_errors = [
                *row.attempt_errors,
                {"attempt": row.attempts, "code": code, "message": message, "at": _iso(now)},
            ]
            if transient and row.attempts < row.max_attempts:
                delay = _backoff_seconds(row.attempts, retry_base_seconds)
                conn.execute(
                    update(jobs)
                    .where(_held_by(job_id, worker_id))
                    .values(
                        status=STATUS_QUEUED,
                        run_after=now + timedelta(seconds=delay),
                        lease_owner=None,
                        lease_expires_at=None,
                        stage=None,
                        attempt_errors=attempt_errors,
                    )
                )
                self._event(
                    conn,
                    job_id,
                    STATUS_QUEUED,
                    now,
                    attempt=row.attempts,
                    worker=worker_id,
                    detail=code,
                )
            else:
                self._finish(conn, row, STATUS_FAILED, code, message, attempt_errors, now)
            self._notify(conn)
            return self._load_job(conn, job_id)

    @_retry_once
    def block(self, job_id: str, worker_id: str, *, code: str, message: str) -> JobRecord:
        """The pipeline refused the content: the job is blocked and refunded.
        Without the lease nothing changes, as with `fail`."""
        with self._tx() as conn:
            now = self._clock()
            row = self._lock_job(conn, job_id)
            if row.status != STATUS_PROCESSING or row.lease_owner != worker_id:
                log.warning("block(%s) by %s ignored: lease not held", job_id, worker_id)
                return _job_record(row)
            self._finish(conn, row, STATUS_BLOCKED, code, message, list(row.attempt_errors), now)
            self._notify(conn)
            return self._load_job(conn, job_id)

    def _finish(
        self,
        conn: Connection,
        row: Row[Any],
        status: str,
        code: str,
        message: str,
        attempt_errors: list[dict[str, Any]],
        now: datetime,
    ) -> None:
        """Move a processing job to a terminal failure state and refund it."""
        changed = conn.execute(
            update(jobs)
            .where(
                jobs.c.id == row.id,
                jobs.c.status == STATUS_PROCESSING,
                jobs.c.attempts == row.attempts,
            )
            .values(
                status=status,
                error_code=code,
                error_message=message,
                completed_at=now,
                lease_expires_at=None,
                stage=None,
                attempt_errors=attempt_errors,
            )
        ).rowcount
        if changed == 1:
            self._refund(conn, row, now)
            self._event(
                conn,
                row.id,
                status,
                now,
                attempt=row.attempts,
                worker=row.lease_owner,
                detail=code,
            )
            self._enqueue_webhook(conn, row.id, row.account_id, row.webhook_url, now)


# Hot-path statements, built once: constructing a SQLAlchemy statement costs
# more client CPU than running it. Parameters are bound per call.
_HELD = and_(
    jobs.c.id == bindparam("job_id"),
    jobs.c.status == STATUS_PROCESSING,
    jobs.c.lease_owner == bindparam("worker_id"),
)
_HEARTBEAT = update(jobs).where(_HELD).values(lease_expires_at=bindparam("u_expires"))
_HEARTBEAT_STAGE = _HEARTBEAT.values(stage=bindparam("u_stage"))
_RECORD_QA = update(jobs).where(_HELD).values(qa=bindparam("u_qa"))
_COMPLETE = (
    update(jobs)
    .where(_HELD)
    .values(
        status=STATUS_COMPLETED,
        completed_at=bindparam("u_now"),
        output_key=bindparam("u_key"),
        output_expires_at=bindparam("u_expires"),
        width=bindparam("u_width"),
        height=bindparam("u_height"),
        format=bindparam("u_format"),
        processing_ms=bindparam("u_ms"),
        engines=bindparam("u_engines"),
        pipeline=bindparam("u_pipeline"),
        error_code=None,
        error_message=None,
        lease_expires_at=None,
        stage=None,
    )
    .returning(jobs.c.account_id, jobs.c.webhook_url, jobs.c.attempts)
)

# Migration 0003's lightbox_complete, run through the driver (see
# Transactions._statement); parameters are positional.
_COMPLETE_PG = "SELECT lightbox_complete(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"


def _held_by(job_id: str, worker_id: str) -> Any:
    return and_(
        jobs.c.id == job_id,
        jobs.c.status == STATUS_PROCESSING,
        jobs.c.lease_owner == worker_id,
    )


def _backoff_seconds(attempt: int, base: float) -> float:
    return min(MAX_RETRY_DELAY_SECONDS, base * 2 ** (attempt - 1)) * random.uniform(1.0, 2.0)
