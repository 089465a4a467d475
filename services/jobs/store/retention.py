"""The queries retention runs: which blobs to purge, marking them purged,
deleting old jobs, and which output keys are still referenced.

Owns: the store side of services/jobs/retention.py (which deletes the
blobs and decides the ages). Must not: touch a job that has not ended, a
webhook still being delivered, or the ledger (its rows outlive their jobs).
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, or_, select, update

from services.jobs.models import idempotency_keys, job_events, jobs, webhook_deliveries, webhooks
from services.jobs.store.base import StoreBase
from services.jobs.store.plumbing.tx import _retry_once
from services.jobs.store.records import STATUS_COMPLETED, TERMINAL_STATUSES, WEBHOOK_PENDING


class RetentionMixin(StoreBase):
    """Retention queries (see the module docstring)."""

    @_retry_once
    def jobs_with_inputs_to_purge(
        self, older_than: timedelta, limit: int = 500
    ) -> list[tuple[str, dict[str, str]]]:
        """(job id, inputs) of terminal jobs that ended before now - older_than
        and still have their input blobs."""
        with self._tx(write=False) as conn:
            rows = conn.execute(
                select(jobs.c.id, jobs.c.inputs)
                .where(
                    jobs.c.inputs_purged_at.is_(None),
                    jobs.c.completed_at <= self._clock() - older_than,
                    jobs.c.status.in_(TERMINAL_STATUSES),
                )
                .order_by(jobs.c.completed_at)
                .limit(limit)
            )
            return [(r.id, dict(r.inputs or {})) for r in rows]

    @_retry_once
    def mark_inputs_purged(self, job_ids: list[str]) -> int:
        if not job_ids:
            return 0
        with self._tx() as conn:
            return conn.execute(
                update(jobs)
                .where(
                    jobs.c.id.in_(job_ids),
                    jobs.c.status.in_(TERMINAL_STATUSES),
                    jobs.c.inputs_purged_at.is_(None),
                )
                .values(inputs_purged_at=self._clock())
            ).rowcount

    @_retry_once
    def jobs_with_outputs_to_purge(self, limit: int = 500) -> list[tuple[str, str]]:
        """(job id, output key) of completed jobs whose output has expired
        (output_expires_at passed) and is still stored."""
        with self._tx(write=False) as conn:
            rows = conn.execute(
                select(jobs.c.id, jobs.c.output_key)
                .where(
                    jobs.c.output_purged_at.is_(None),
                    jobs.c.output_expires_at <= self._clock(),
                    jobs.c.status == STATUS_COMPLETED,
                    jobs.c.output_key.is_not(None),
                )
                .order_by(jobs.c.output_expires_at)
                .limit(limit)
            )
            return [(r.id, r.output_key) for r in rows]

    @_retry_once
    def mark_output_purged(self, job_ids: list[str]) -> int:
        if not job_ids:
            return 0
        with self._tx() as conn:
            return conn.execute(
                update(jobs)
                .where(
                    jobs.c.id.in_(job_ids),
                    jobs.c.status == STATUS_COMPLETED,
                    jobs.c.output_purged_at.is_(None),
                )
                .values(output_purged_at=self._clock())
            ).rowcount

    @_retry_once
    def delete_old_jobs(self, older_than: timedelta, limit: int = 500) -> list[str]:
        """Delete terminal jobs that ended before now - older_than, whose blobs
        are gone and whose webhook is settled (or past its give-up time), with
        their events, webhook rows and idempotency keys. Ledger rows stay.
        Returns the deleted ids."""
        with self._tx() as conn:
            now = self._clock()
            cutoff = now - older_than
            unsettled = select(webhooks.c.job_id).where(
                webhooks.c.status == WEBHOOK_PENDING, webhooks.c.give_up_at > now
            )
            ids = list(
                conn.execute(
                    select(jobs.c.id)
                    .where(
                        jobs.c.completed_at <= cutoff,
                        jobs.c.status.in_(TERMINAL_STATUSES),
                        jobs.c.inputs_purged_at.is_not(None),
                        or_(jobs.c.output_key.is_(None), jobs.c.output_purged_at.is_not(None)),
                        jobs.c.id.not_in(unsettled),
                    )
                    .order_by(jobs.c.completed_at)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                ).scalars()
            )
            if not ids:
                return []
            for table, column in (
                (webhook_deliveries, webhook_deliveries.c.job_id),
                (webhooks, webhooks.c.job_id),
                (job_events, job_events.c.job_id),
                (idempotency_keys, idempotency_keys.c.job_id),
            ):
                conn.execute(delete(table).where(column.in_(ids)))
            conn.execute(
                delete(jobs).where(jobs.c.id.in_(ids), jobs.c.status.in_(TERMINAL_STATUSES))
            )
            return ids

    @_retry_once
    def referenced_output_keys(self, keys: list[str]) -> set[str]:
        """Which of these blob keys some job holds as its output."""
        if not keys:
            return set()
        with self._tx(write=False) as conn:
            return set(
                conn.execute(
                    select(jobs.c.output_key).where(
                        jobs.c.output_key.is_not(None), jobs.c.output_key.in_(keys)
                    )
                ).scalars()
            )
