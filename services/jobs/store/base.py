"""The store's core: construction, lifecycle, and the job-row primitives that
every concern uses.

Owns: JobStore's constructor and settings (clock, idempotency window,
webhook give-up age), the engines, migrate/ping/close, and inside a
transaction: loading and locking a job row, appending to `job_events`, and
NOTIFY on commit (PostgreSQL) or the doorbell after it (SQLite). Must not:
change a job's state, touch money or webhooks (those are ledger.py, queue/,
webhooks.py); the concerns build on this class, never the other way round.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from alembic import command
from sqlalchemy import Engine, bindparam, func, insert, select
from sqlalchemy.engine import Connection, Row

from services.common.errors import NotFound
from services.jobs.db import make_engine
from services.jobs.migrations import alembic_config
from services.jobs.models import job_events, jobs
from services.jobs.store.plumbing.tx import RING_AFTER_COMMIT, Transactions, _retry_once
from services.jobs.store.queue.doorbell import Doorbell, doorbell_folder
from services.jobs.store.queue.notifier import NOTIFY_CHANNEL, _Notifier
from services.jobs.store.records import JobRecord, _job_record

log = logging.getLogger(__name__)

IDEMPOTENCY_TTL = timedelta(hours=24)

# A webhook is attempted for this long after its job ended, then given up.
WEBHOOK_MAX_AGE = timedelta(hours=24)

# A claim looks at this many candidate jobs at most; past that it reports no
# work rather than hold the queue's locks for a long scan.
MAX_CLAIM_CANDIDATES = 50

_MIGRATE_LOCK = threading.Lock()


class StoreBase(Transactions):
    """Construction, lifecycle and the job-row primitives (see the module docstring)."""

    def __init__(
        self,
        database_url: str,
        *,
        clock: Callable[[], datetime] | None = None,
        idempotency_ttl: timedelta = IDEMPOTENCY_TTL,
        webhook_max_age: timedelta = WEBHOOK_MAX_AGE,
    ) -> None:
        """`clock` returns the current tz-aware UTC time; tests move it by hand.

        Leases and run_after are compared with this process's clock, so hosts
        running workers need synchronised clocks (NTP): the skew between them
        must stay well under a lease.
        """
        self._engine: Engine = make_engine(database_url)
        self._dialect = self._engine.dialect.name
        # PostgreSQL: a pool of autocommit connections for the hot path's
        # single-statement calls (see _statement).
        self._statements: Engine | None = (
            make_engine(database_url, autocommit=True) if self._dialect == "postgresql" else None
        )
        self._clock = clock or (lambda: datetime.now(UTC))
        self._idempotency_ttl = idempotency_ttl
        self._webhook_max_age = webhook_max_age
        # PostgreSQL: one LISTEN connection for all the threads that wait for work.
        self._notifier: _Notifier | None = None
        # SQLite in a file: rung after commits that make work runnable, waited on by
        # idle workers in every process using the file (queue/doorbell.py).
        folder = (
            doorbell_folder(self._engine.url.database or "") if self._dialect == "sqlite" else None
        )
        self._doorbell: Doorbell | None = Doorbell(folder) if folder is not None else None
        self._notifier_lock = threading.Lock()
        # Per thread: the notifier's mark when its last claim began (see _wait_postgres).
        self._claims = threading.local()

    @property
    def dialect(self) -> str:
        """The backend in use: "sqlite" or "postgresql"."""
        return self._dialect

    @property
    def engine(self) -> Engine:
        """For admin tools and tests; services use the methods below."""
        return self._engine

    def migrate(self) -> None:
        """Create or upgrade the schema to the newest migration; safe to run from
        several processes at once (they serialise on a lock) and to repeat."""
        config = alembic_config()
        # Alembic runs env.py through module-global state (alembic.context), so
        # two threads of one process must not migrate at the same time.
        with _MIGRATE_LOCK, self._tx() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "head")

    def now(self) -> datetime:
        """The store's clock: what it stamps rows with (tests move it by hand)."""
        return self._clock()

    @_retry_once
    def ping(self) -> None:
        with self._tx(write=False) as conn:
            conn.execute(select(1)).scalar_one()

    def close(self) -> None:
        with self._notifier_lock:
            notifier, self._notifier = self._notifier, None
        if notifier is not None:
            notifier.stop()
        if self._doorbell is not None:
            self._doorbell.close()
        self._engine.dispose()
        if self._statements is not None:
            self._statements.dispose()

    def _load_job(self, conn: Connection, job_id: str, account_id: str | None = None) -> JobRecord:
        if account_id is None:
            row = conn.execute(_LOAD_JOB, {"job_id": job_id}).first()
        else:
            row = conn.execute(
                select(jobs).where(jobs.c.id == job_id, jobs.c.account_id == account_id)
            ).first()
        if row is None:
            raise NotFound(f"No job with id {job_id!r}.")
        return _job_record(row)

    def _lock_job(self, conn: Connection, job_id: str, account_id: str | None = None) -> Row[Any]:
        query = select(jobs).where(jobs.c.id == job_id).with_for_update(of=jobs)
        if account_id is not None:
            query = query.where(jobs.c.account_id == account_id)
        row = conn.execute(query).first()
        if row is None:
            raise NotFound(f"No job with id {job_id!r}.")
        return row

    def _event(
        self,
        conn: Connection,
        job_id: str,
        status: str,
        now: datetime,
        *,
        attempt: int,
        worker: str | None = None,
        detail: str | None = None,
    ) -> None:
        conn.execute(
            _INSERT_EVENT,
            {
                "job_id": job_id,
                "at": now,
                "status": status,
                "attempt": attempt,
                "worker": worker,
                "detail": detail,
            },
        )

    def _notify(self, conn: Connection) -> None:
        # Delivered on commit; a rolled-back transaction wakes nobody.
        if self._dialect == "postgresql":
            conn.execute(_NOTIFY)
        elif self._doorbell is not None:
            conn.info[RING_AFTER_COMMIT] = True

    def _after_commit_ring(self) -> None:
        if self._doorbell is None:
            return
        try:
            self._doorbell.ring()
        except Exception:  # the commit stands; idle workers find it by polling
            log.exception("doorbell: ring failed")


_INSERT_EVENT = insert(job_events)
_LOAD_JOB = select(jobs).where(jobs.c.id == bindparam("job_id"))
_NOTIFY = select(func.pg_notify(NOTIFY_CHANNEL, ""))
