"""A job as the API sees it after submit: read one, list an account's, read
its event log, cancel it while it is queued.

Owns: `get`, `list_jobs` (newest first, with an opaque cursor), `events`,
and `cancel` (queued -> canceled, refunded, webhook enqueued, in one
transaction). Must not: create jobs (submit.py) or move a job a worker holds
(queue/).
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime

from sqlalchemy import and_, or_, select, update

from services.common.errors import Conflict, InvalidParameter
from services.jobs.models import job_events, jobs
from services.jobs.store.ledger import LedgerMixin
from services.jobs.store.plumbing.sql import _iso
from services.jobs.store.plumbing.tx import _retry_once
from services.jobs.store.records import (
    STATUS_CANCELED,
    STATUS_QUEUED,
    JobEvent,
    JobRecord,
    _job_record,
)
from services.jobs.store.webhooks import WebhookOutboxMixin

LIST_LIMIT_MAX = 100


class JobsMixin(WebhookOutboxMixin, LedgerMixin):
    """Reading, listing and canceling jobs (see the module docstring)."""

    @_retry_once
    def get(self, job_id: str, account_id: str | None = None) -> JobRecord:
        """The job; NotFound if unknown or (with account_id) another account's."""
        with self._tx(write=False) as conn:
            return self._with_webhooks(conn, [self._load_job(conn, job_id, account_id)])[0]

    @_retry_once
    def list_jobs(
        self, account_id: str, limit: int = 20, cursor: str | None = None
    ) -> tuple[list[JobRecord], str | None]:
        """The account's jobs, newest first, and a cursor for the next page (None at the end)."""
        if not 1 <= limit <= LIST_LIMIT_MAX:
            raise InvalidParameter("limit", f"limit must be between 1 and {LIST_LIMIT_MAX}.")
        query = select(jobs).where(jobs.c.account_id == account_id)
        if cursor:
            created_at, last_id = _decode_cursor(cursor)
            query = query.where(
                or_(
                    jobs.c.created_at < created_at,
                    and_(jobs.c.created_at == created_at, jobs.c.id < last_id),
                )
            )
        query = query.order_by(jobs.c.created_at.desc(), jobs.c.id.desc()).limit(limit + 1)
        with self._tx(write=False) as conn:
            records = self._with_webhooks(conn, [_job_record(row) for row in conn.execute(query)])
        if len(records) <= limit:
            return records, None
        records = records[:limit]
        return records, _encode_cursor(records[-1].created_at, records[-1].id)

    @_retry_once
    def events(self, job_id: str) -> list[JobEvent]:
        """The job's state transitions, oldest first."""
        with self._tx(write=False) as conn:
            self._load_job(conn, job_id)
            rows = conn.execute(
                select(job_events).where(job_events.c.job_id == job_id).order_by(job_events.c.id)
            )
            return [JobEvent(r.at, r.status, r.attempt, r.worker, r.detail) for r in rows]

    @_retry_once
    def cancel(self, job_id: str, account_id: str) -> JobRecord:
        """Cancel a queued job and refund it; Conflict for any other state."""
        with self._tx() as conn:
            now = self._clock()
            row = self._lock_job(conn, job_id, account_id)
            if row.status != STATUS_QUEUED:
                raise Conflict(
                    f"Job {job_id} is {row.status}; only queued jobs can be canceled.",
                    extra={"status": row.status},
                )
            changed = conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.status == STATUS_QUEUED)
                .values(status=STATUS_CANCELED, completed_at=now)
            ).rowcount
            if changed != 1:
                raise Conflict(f"Job {job_id} left the queue while being canceled.")
            self._refund(conn, row, now)
            self._event(conn, job_id, STATUS_CANCELED, now, attempt=row.attempts)
            self._enqueue_webhook(conn, job_id, row.account_id, row.webhook_url, now)
            return self._with_webhooks(conn, [self._load_job(conn, job_id)])[0]


def _encode_cursor(created_at: datetime, job_id: str) -> str:
    raw = json.dumps([_iso(created_at), job_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created_at, job_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(created_at, str):
            raise TypeError("cursor time is not a string")
        moment = datetime.fromisoformat(created_at.replace("Z", "+00:00"))
        if moment.tzinfo is None or not isinstance(job_id, str):
            raise ValueError("incomplete cursor")
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidParameter("cursor", "The cursor is not one this API issued.") from exc
    return moment, job_id
