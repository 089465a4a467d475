"""Claiming a job: which job a worker gets next, under its account's
concurrency cap, and what happens to a job whose worker stopped renewing.

Owns: `claim` side by side on SQLite (the Python body, the specification)
and as lightbox_claim (migration 0003); `complete_and_claim`, a worker's
completion and next claim in one statement (lightbox_complete_and_claim,
migration 0004) or two calls; the candidate queries and the cap check;
`queue_depth`. Must not: wait for work (wakeups.py), or end a job itself
other than one whose last attempt's lease expired: completions go through
leases.py's `complete` (lightbox_complete_and_claim calls lightbox_complete).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import psycopg
from sqlalchemy import bindparam, exists, func, or_, select, update
from sqlalchemy.engine import Connection, Row

from services.common.errors import InvalidParameter, NotFound
from services.jobs.models import accounts, jobs
from services.jobs.store.base import MAX_CLAIM_CANDIDATES
from services.jobs.store.plumbing.sql import _iso, _status_is, _utc_row
from services.jobs.store.plumbing.tx import _retry_once, _Retryable
from services.jobs.store.queue.leases import LeasesMixin
from services.jobs.store.records import (
    STATUS_FAILED,
    STATUS_PROCESSING,
    STATUS_QUEUED,
    JobRecord,
    _job_record,
)

log = logging.getLogger(__name__)

# The first key of the per-account advisory locks lightbox_claim takes
# (migration 0003 holds the same value); any constant works as long as nothing
# else in the database uses it.
_CLAIM_LOCK_CLASS = 0x4C42_434C


class ClaimMixin(LeasesMixin):
    """Taking leases (see the module docstring)."""

    @_retry_once
    def claim(self, worker_id: str, lease_seconds: float) -> JobRecord | None:
        """Lease the longest-waiting runnable job to `worker_id`, or None if there is none.

        Runnable: processing with an expired lease (its worker died; these
        come first, ordered by expiry), or queued with run_after passed and
        its account under max_concurrent_jobs (ordered by run_after, which is
        the submit time until a retry moves it). An expired job already at
        max_attempts is failed ("attempts_exhausted") and refunded instead.
        Both candidate queries walk an index in order and stop at the first
        row, so a claim costs the same with ten or a million queued jobs.
        """
        if not lease_seconds > 0:
            raise InvalidParameter("lease_seconds", "lease_seconds must be positive.")
        if self._dialect == "postgresql":
            return self._claim_postgres(worker_id, lease_seconds)
        with self._tx() as conn:
            now = self._clock()
            capped_accounts: set[str] = set()
            for _ in range(MAX_CLAIM_CANDIDATES):
                row = None
                for query in _CLAIM_QUERIES:
                    if capped_accounts:
                        query = query.where(jobs.c.account_id.not_in(capped_accounts))
                    row = conn.execute(query, {"now": now}).first()
                    if row is not None:
                        break
                if row is None:
                    # An empty queue costs two index probes and nothing else.
                    return None
                # Per candidate, so that passing over a capped account rolls back
                # to here (lightbox_claim does the same around its account lock).
                savepoint = conn.begin_nested()
                attempt_errors = list(row.attempt_errors)
                if row.status == STATUS_PROCESSING:
                    attempt_errors.append(
                        {
                            "attempt": row.attempts,
                            "code": "lease_expired",
                            "message": f"worker {row.lease_owner} stopped renewing its lease",
                            "at": _iso(now),
                        }
                    )
                    if row.attempts >= row.max_attempts:
                        self._finish_expired(conn, row, attempt_errors, now)
                        savepoint.commit()
                        continue
                cap = self._account_cap(conn, row.account_id)
                if self._alive_leases(conn, row.account_id, now, exclude=row.id) >= cap:
                    savepoint.rollback()
                    capped_accounts.add(row.account_id)
                    continue
                taken = conn.execute(
                    _CLAIM_UPDATE,
                    {
                        "job_id": row.id,
                        "old_status": row.status,
                        "old_attempts": row.attempts,
                        "u_owner": worker_id,
                        "u_expires": now + timedelta(seconds=lease_seconds),
                        "u_attempts": row.attempts + 1,
                        "u_started": row.started_at or now,
                        "u_errors": attempt_errors,
                    },
                ).first()
                if taken is not None:
                    self._event(
                        conn,
                        row.id,
                        STATUS_PROCESSING,
                        now,
                        attempt=row.attempts + 1,
                        worker=worker_id,
                        detail="lease_expired" if row.status == STATUS_PROCESSING else None,
                    )
                savepoint.commit()
                if taken is not None:
                    return _job_record(taken)
            return None

    @_retry_once
    def _claim_postgres(self, worker_id: str, lease_seconds: float) -> JobRecord | None:
        """`claim` as one call of lightbox_claim (migration 0003). Retrying after
        a lost connection is safe: a claim that did commit leaves a lease
        nobody renews, which expires and returns the job to the queue."""
        self._claim_starts()
        now = self._clock()
        with self._statement(retry_safe=True) as driver:
            row = (
                driver.cursor(row_factory=_utc_row)
                .execute(_CLAIM_PG, self._claim_params(worker_id, lease_seconds, now), prepare=True)
                .fetchone()
            )
        return None if row is None else _job_record(row)

    def _claim_params(self, worker_id: str, lease_seconds: float, now: datetime) -> tuple[Any, ...]:
        return (
            worker_id,
            now,
            now + timedelta(seconds=lease_seconds),
            MAX_CLAIM_CANDIDATES,
            now + self._webhook_max_age,
        )

    def complete_and_claim(
        self, job_id: str, worker_id: str, *, lease_seconds: float, **outcome: Any
    ) -> tuple[bool, JobRecord | None]:
        """`complete(job_id, worker_id, **outcome)`, then `claim(worker_id,
        lease_seconds)`: what a worker does between two jobs.

        On PostgreSQL both run in one statement, lightbox_complete_and_claim
        (migration 0004): one implicit transaction, the completion first, and
        a durable commit (the claim alone would commit asynchronously). A
        completion refused because the lease was lost claims nothing. If the
        statement did nothing (deadlock, serialisation failure, a session the
        server terminated before the commit) the two steps run again one by
        one. A connection lost during it leaves the outcome unknown and is
        ServiceUnavailable, never retried: had the completion committed, a
        second one would find the lease gone. The job then shows completed,
        or its lease expires and it runs again.
        """
        if not lease_seconds > 0:
            raise InvalidParameter("lease_seconds", "lease_seconds must be positive.")
        if self._dialect != "postgresql":
            return self._complete_then_claim(job_id, worker_id, lease_seconds, outcome)
        self._claim_starts()
        now = self._clock()
        params = (
            *self._completion(job_id, worker_id, now, **outcome),
            now + timedelta(seconds=lease_seconds),
            MAX_CLAIM_CANDIDATES,
        )
        try:
            with self._statement(retry_safe=False) as driver:
                try:
                    row = (
                        driver.cursor(row_factory=_utc_row)
                        .execute(_COMPLETE_AND_CLAIM_PG, params, prepare=True)
                        .fetchone()
                    )
                except psycopg.Error as exc:
                    if exc.sqlstate != _LEASE_LOST_SQLSTATE:
                        raise
                    return False, None
        except _Retryable as exc:
            log.warning("complete_and_claim(%s): %s; one step at a time", job_id, exc)
            return self._complete_then_claim(job_id, worker_id, lease_seconds, outcome)
        return True, None if row is None else _job_record(row)

    def _complete_then_claim(
        self, job_id: str, worker_id: str, lease_seconds: float, outcome: dict[str, Any]
    ) -> tuple[bool, JobRecord | None]:
        """complete_and_claim as two calls (SQLite, or PostgreSQL's fallback)."""
        if not self.complete(job_id, worker_id, **outcome):
            return False, None
        return True, self.claim(worker_id, lease_seconds)

    @_retry_once
    def queue_depth(self) -> int:
        """Jobs waiting in the queue (including those waiting out a retry back-off)."""
        with self._tx(write=False) as conn:
            return conn.execute(
                select(func.count()).select_from(jobs).where(_status_is(jobs, STATUS_QUEUED))
            ).scalar_one()

    def _claim_starts(self) -> None:
        """Note, for this thread, how many notifications had arrived when its
        claim began: the claim saw every job they announced, so if it found
        nothing, none of them is a reason to claim again."""
        notifier = self._notifier
        if notifier is not None:
            self._claims.mark = notifier.mark()

    def _claimable(self, conn: Connection, now: datetime) -> bool:
        """Whether a claim would find a job now (SQLite, where claims are
        serialised anyway; PostgreSQL's is part of lightbox_next_due)."""
        probes = [
            exists(query.with_only_columns(jobs.c.id).order_by(None))
            for query in _claim_candidates(now)
        ]
        return bool(conn.execute(select(or_(*probes))).scalar_one())

    def _account_cap(self, conn: Connection, account_id: str) -> int:
        """The account's max_concurrent_jobs (SQLite claims are serialised by
        BEGIN IMMEDIATE, so the cap check needs no lock of its own)."""
        cap = conn.execute(_ACCOUNT_CAP, {"account_id": account_id}).scalar()
        if cap is None:
            raise NotFound(f"No account with id {account_id!r}.")
        return int(cap)

    def _alive_leases(self, conn: Connection, account_id: str, now: datetime, exclude: str) -> int:
        return int(
            conn.execute(
                _ALIVE_LEASES, {"account_id": account_id, "now": now, "exclude": exclude}
            ).scalar_one()
        )

    def _finish_expired(
        self, conn: Connection, row: Row[Any], attempt_errors: list[dict[str, Any]], now: datetime
    ) -> None:
        self._finish(
            conn,
            row,
            STATUS_FAILED,
            "attempts_exhausted",
            f"The job did not finish in {row.max_attempts} attempts; "
            "the last worker stopped responding.",
            attempt_errors,
            now,
        )


def _claim_candidates(now: datetime) -> tuple[Any, Any]:
    """The queries for jobs a claim may take now, in the order to try them:
    expired leases (index status, lease_expires_at), then due queued jobs of
    accounts under their cap (index status, run_after, id). The cap is
    re-checked under the account's lock."""
    expired = (
        select(jobs)
        .where(_status_is(jobs, STATUS_PROCESSING), jobs.c.lease_expires_at <= now)
        .order_by(jobs.c.lease_expires_at, jobs.c.id)
    )
    queued = (
        select(jobs)
        .where(_status_is(jobs, STATUS_QUEUED), jobs.c.run_after <= now, _under_cap(now))
        .order_by(jobs.c.run_after, jobs.c.id)
    )
    return expired, queued


def _under_cap(now: datetime) -> Any:
    """The job's account has fewer live leases than max_concurrent_jobs."""
    running = jobs.alias("running")
    used = (
        select(func.count())
        .where(
            running.c.account_id == jobs.c.account_id,
            _status_is(running, STATUS_PROCESSING),
            running.c.lease_expires_at > now,
        )
        .scalar_subquery()
    )
    cap = (
        select(accounts.c.max_concurrent_jobs)
        .where(accounts.c.id == jobs.c.account_id)
        .scalar_subquery()
    )
    return used < cap


# Hot-path statements, built once: constructing a SQLAlchemy statement costs
# more client CPU than running it. Parameters are bound per call.
_NOW = bindparam("now")
_CLAIM_QUERIES = tuple(
    query.limit(1).with_for_update(skip_locked=True, of=jobs)
    for query in _claim_candidates(_NOW)  # type: ignore[arg-type]
)
_CLAIM_UPDATE = (
    update(jobs)
    .where(
        jobs.c.id == bindparam("job_id"),
        jobs.c.status == bindparam("old_status"),
        jobs.c.attempts == bindparam("old_attempts"),
    )
    .values(
        status=STATUS_PROCESSING,
        lease_owner=bindparam("u_owner"),
        lease_expires_at=bindparam("u_expires"),
        attempts=bindparam("u_attempts"),
        started_at=bindparam("u_started"),
        stage=None,
        attempt_errors=bindparam("u_errors"),
    )
    .returning(*jobs.c)
)
_ACCOUNT_CAP = select(accounts.c.max_concurrent_jobs).where(
    accounts.c.id == bindparam("account_id")
)
_ALIVE_LEASES = (
    select(func.count())
    .select_from(jobs)
    .where(
        jobs.c.account_id == bindparam("account_id"),
        _status_is(jobs, STATUS_PROCESSING),
        jobs.c.lease_expires_at > bindparam("now"),
        jobs.c.id != bindparam("exclude"),
    )
)

# The PostgreSQL functions of migrations 0003 and 0004, run through the driver (see
# Transactions._statement); parameters are positional.
_CLAIM_PG = "SELECT * FROM lightbox_claim(%s, %s, %s, %s, %s)"
# Migration 0004: a completion and the worker's next claim in one statement.
_COMPLETE_AND_CLAIM_PG = (
    "SELECT * FROM lightbox_complete_and_claim("
    "%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
# Raised by lightbox_complete_and_claim when the worker no longer holds the lease.
_LEASE_LOST_SQLSTATE = "LB410"
