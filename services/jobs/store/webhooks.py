"""The webhook outbox: one row per ended job with a webhook_url, and its
delivery attempts.

Owns: enqueueing the outbox row (in the transaction that ends the job),
reading a job's webhook state onto its JobRecord, and the dispatcher's side:
leasing the most overdue delivery, recording an attempt's outcome, and when
the next one falls due. Must not: send HTTP or sign payloads (that is
services/jobs/webhooks.py, the dispatcher), or change the job itself.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime, timedelta

from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.engine import Connection

from services.common.errors import InvalidParameter, NotFound
from services.jobs.models import accounts, webhook_deliveries, webhooks
from services.jobs.store.base import MAX_CLAIM_CANDIDATES, StoreBase
from services.jobs.store.plumbing.sql import _as_utc, _insert_ignoring_conflicts
from services.jobs.store.plumbing.tx import _retry_once
from services.jobs.store.records import (
    TERMINAL_STATUSES,
    WEBHOOK_DELIVERED,
    WEBHOOK_FAILED,
    WEBHOOK_PENDING,
    JobRecord,
    WebhookAttempt,
    WebhookState,
    WebhookTask,
)

log = logging.getLogger(__name__)


class WebhookOutboxMixin(StoreBase):
    """The webhook outbox (see the module docstring)."""

    @_retry_once
    def claim_webhook(self, dispatcher_id: str, lease_seconds: float) -> WebhookTask | None:
        """Lease the most overdue pending delivery to `dispatcher_id`, or None.

        The attempt number is taken under the row lock, so two dispatchers
        never start the same attempt. A delivery whose dispatcher died (lease
        expired) is resumed: its unfinished attempt is recorded with an
        unknown outcome and the next attempt starts. Deliveries past their
        give-up time fail instead.
        """
        if not lease_seconds > 0:
            raise InvalidParameter("lease_seconds", "lease_seconds must be positive.")
        with self._tx() as conn:
            now = self._clock()
            for _ in range(MAX_CLAIM_CANDIDATES):
                row = conn.execute(
                    select(webhooks)
                    .where(
                        webhooks.c.status == WEBHOOK_PENDING,
                        webhooks.c.next_attempt_at <= now,
                        or_(
                            webhooks.c.lease_expires_at.is_(None),
                            webhooks.c.lease_expires_at <= now,
                        ),
                    )
                    .order_by(webhooks.c.next_attempt_at, webhooks.c.job_id)
                    .limit(1)
                    .with_for_update(skip_locked=True)
                ).first()
                if row is None:
                    return None
                if row.lease_owner is not None:
                    conn.execute(
                        _insert_ignoring_conflicts(self._dialect, webhook_deliveries).values(
                            job_id=row.job_id,
                            attempt=row.attempts,
                            dispatcher=row.lease_owner,
                            at=row.lease_expires_at,
                            error="the dispatcher stopped before recording the outcome "
                            "(lease expired); the receiver may have got it",
                            next_attempt_at=now,
                        )
                    )
                if now >= row.give_up_at:
                    conn.execute(
                        update(webhooks)
                        .where(webhooks.c.job_id == row.job_id)
                        .values(
                            status=WEBHOOK_FAILED,
                            finished_at=now,
                            next_attempt_at=None,
                            lease_owner=None,
                            lease_expires_at=None,
                        )
                    )
                    continue
                attempt = row.attempts + 1
                conn.execute(
                    update(webhooks)
                    .where(webhooks.c.job_id == row.job_id, webhooks.c.attempts == row.attempts)
                    .values(
                        attempts=attempt,
                        lease_owner=dispatcher_id,
                        lease_expires_at=now + timedelta(seconds=lease_seconds),
                    )
                )
                secret = conn.execute(
                    select(accounts.c.webhook_secret).where(accounts.c.id == row.account_id)
                ).scalar_one()
                job = self._with_webhooks(conn, [self._load_job(conn, row.job_id)])[0]
                return WebhookTask(job=job, url=row.url, attempt=attempt, secret=secret)
            return None

    @_retry_once
    def record_webhook_attempt(
        self,
        job_id: str,
        dispatcher_id: str,
        attempt: int,
        *,
        started_at: datetime,
        duration_ms: int,
        status_code: int | None,
        error: str | None,
        delivered: bool,
        retry_in_seconds: float | None,
    ) -> WebhookState:
        """Record the outcome of a claimed attempt and schedule what follows.

        Not delivered: the next attempt is due in `retry_in_seconds`, unless
        that is None (a permanent refusal) or falls after the give-up time, in
        which case the delivery has failed. If the lease was lost meanwhile,
        only the attempt's own row is written; the state belongs to its new holder.
        """
        with self._tx() as conn:
            now = self._clock()
            row = conn.execute(
                select(webhooks).where(webhooks.c.job_id == job_id).with_for_update()
            ).first()
            if row is None:
                raise NotFound(f"No webhook for job {job_id!r}.")
            held = row.lease_owner == dispatcher_id and row.attempts == attempt
            next_at: datetime | None = None
            if held:
                status = WEBHOOK_DELIVERED if delivered else WEBHOOK_FAILED
                if not delivered and retry_in_seconds is not None:
                    due = now + timedelta(seconds=retry_in_seconds)
                    if due < row.give_up_at:
                        status, next_at = WEBHOOK_PENDING, due
                conn.execute(
                    update(webhooks)
                    .where(webhooks.c.job_id == job_id)
                    .values(
                        status=status,
                        next_attempt_at=next_at,
                        lease_owner=None,
                        lease_expires_at=None,
                        finished_at=None if status == WEBHOOK_PENDING else now,
                    )
                )
            else:
                log.warning("webhook %s attempt %d: lease lost before recording", job_id, attempt)
            outcome = {
                "dispatcher": dispatcher_id,
                "at": started_at,
                "duration_ms": duration_ms,
                "status_code": status_code,
                "error": error,
            }
            # A resumed delivery may already hold a placeholder row for this
            # attempt; the real outcome replaces it.
            replaced = conn.execute(
                update(webhook_deliveries)
                .where(
                    webhook_deliveries.c.job_id == job_id, webhook_deliveries.c.attempt == attempt
                )
                .values(**outcome)
            ).rowcount
            if not replaced:
                conn.execute(
                    insert(webhook_deliveries).values(
                        job_id=job_id, attempt=attempt, next_attempt_at=next_at, **outcome
                    )
                )
            return self._load_webhooks(conn, [job_id])[job_id]

    @_retry_once
    def seconds_until_webhook_due(self) -> float | None:
        """Seconds until the next pending delivery (or a dispatcher's lease)
        falls due; 0 if one is due now, None if nothing is pending."""
        with self._tx(write=False) as conn:
            now = self._clock()
            soonest = conn.execute(
                select(func.min(webhooks.c.next_attempt_at)).where(
                    webhooks.c.status == WEBHOOK_PENDING
                )
            ).scalar_one()
            leased = conn.execute(
                select(func.min(webhooks.c.lease_expires_at)).where(
                    webhooks.c.status == WEBHOOK_PENDING, webhooks.c.lease_expires_at > now
                )
            ).scalar_one()
        if soonest is None:
            return None
        due = _as_utc(soonest)
        if due <= now and leased is not None:
            # The due row may be the one in flight; wake when its lease ends.
            return max(0.0, (_as_utc(leased) - now).total_seconds())
        return max(0.0, (due - now).total_seconds())

    def _enqueue_webhook(
        self, conn: Connection, job_id: str, account_id: str, url: str | None, now: datetime
    ) -> None:
        """Put the job's webhook in the outbox (once; a job ends only once)."""
        if not url:
            return
        conn.execute(
            _insert_ignoring_conflicts(self._dialect, webhooks).values(
                job_id=job_id,
                account_id=account_id,
                url=url,
                status=WEBHOOK_PENDING,
                attempts=0,
                created_at=now,
                give_up_at=now + self._webhook_max_age,
                next_attempt_at=now,
            )
        )

    def _load_webhooks(self, conn: Connection, job_ids: list[str]) -> dict[str, WebhookState]:
        if not job_ids:
            return {}
        attempts: dict[str, list[WebhookAttempt]] = {}
        for r in conn.execute(
            select(webhook_deliveries)
            .where(webhook_deliveries.c.job_id.in_(job_ids))
            .order_by(webhook_deliveries.c.job_id, webhook_deliveries.c.attempt)
        ):
            attempts.setdefault(r.job_id, []).append(
                WebhookAttempt(
                    attempt=r.attempt,
                    at=r.at,
                    dispatcher=r.dispatcher,
                    duration_ms=r.duration_ms,
                    status_code=r.status_code,
                    error=r.error,
                    next_attempt_at=r.next_attempt_at,
                )
            )
        return {
            r.job_id: WebhookState(
                url=r.url,
                status=r.status,
                attempts=attempts.get(r.job_id, []),
                next_attempt_at=r.next_attempt_at if r.status == WEBHOOK_PENDING else None,
            )
            for r in conn.execute(select(webhooks).where(webhooks.c.job_id.in_(job_ids)))
        }

    def _with_webhooks(self, conn: Connection, records: list[JobRecord]) -> list[JobRecord]:
        """The records with their webhook state. A job that has not ended has
        no outbox row yet and shows a pending delivery without attempts; one
        that ended before webhooks existed (migration 0002) shows none."""
        wanted = [r.id for r in records if r.webhook_url]
        if not wanted:
            return records
        states = self._load_webhooks(conn, wanted)
        out = []
        for r in records:
            state = states.get(r.id)
            if state is None and r.webhook_url and r.status not in TERMINAL_STATUSES:
                state = WebhookState(r.webhook_url, WEBHOOK_PENDING, [])
            out.append(dataclasses.replace(r, webhook=state) if state is not None else r)
        return out
