"""The jobs service's data layer: accounts, API keys, the credit ledger, jobs
and the durable job queue, on SQLite (embedded) or PostgreSQL (production).

Invariants the rest of the system relies on:
- a balance is the sum of the account's ledger rows; a job has at most one
  charge and one refund row (unique constraint), so however calls race nothing
  is charged or refunded twice;
- a job changes state only through a conditional UPDATE on its current state
  (and, for workers, on holding its lease), so exactly one transition wins;
- a worker owns a processing job until its lease expires; after that any worker
  may claim it again, and a job out of attempts fails and is refunded.

Writers serialise per account on PostgreSQL (`SELECT ... FOR NO KEY UPDATE` on
the account row) and globally on SQLite (`BEGIN IMMEDIATE`, see db.py).
Lock order is always job row, then account row, which keeps PostgreSQL free of
deadlocks between claims, cancels and submits.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import logging
import math
import random
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ParamSpec, TypeVar

import psycopg
from alembic import command
from sqlalchemy import (
    Engine,
    and_,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from services.common.errors import (
    Conflict,
    InsufficientCredits,
    InvalidParameter,
    LightboxError,
    NotFound,
    ServiceUnavailable,
)
from services.jobs import keys as keylib
from services.jobs.db import WRITE_OPTION, make_engine
from services.jobs.migrations import alembic_config
from services.jobs.models import accounts, api_keys, idempotency_keys, jobs, ledger

log = logging.getLogger(__name__)

MILLI_PER_CREDIT = 1000
IDEMPOTENCY_TTL = timedelta(hours=24)
# A transient failure is retried after base * 2**(attempt-1) seconds, times a
# random factor in [1, 2) so that jobs failed by one outage do not all return
# at once; the delay never exceeds this cap.
MAX_RETRY_DELAY_SECONDS = 300.0
LIST_LIMIT_MAX = 100
# A claim looks at this many candidate jobs at most; past that it reports no
# work rather than hold the queue's locks for a long scan.
MAX_CLAIM_CANDIDATES = 50
NOTIFY_CHANNEL = "lightbox_jobs"
# SQLite has no notifications: wait_for_work polls, first soon, then backing off.
POLL_FIRST_SLEEP_SECONDS = 0.05
POLL_MAX_SLEEP_SECONDS = 1.0
# PostgreSQL SQLSTATEs for which the whole transaction may simply be run again.
_RETRYABLE_SQLSTATES = {"40001", "40P01"}

STATUS_QUEUED = "queued"
STATUS_PROCESSING = "processing"
STATUS_COMPLETED = "completed"
STATUS_FAILED = "failed"
STATUS_BLOCKED = "blocked"
STATUS_CANCELED = "canceled"
TERMINAL_STATUSES = frozenset({STATUS_COMPLETED, STATUS_FAILED, STATUS_BLOCKED, STATUS_CANCELED})

_MIGRATE_LOCK = threading.Lock()

# Reasons add_credits accepts; "charge" and "refund" rows belong to jobs only.
MANUAL_LEDGER_REASONS = ("grant", "adjustment")


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
class ApiKeyRecord:
    id: str
    account_id: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


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


class _Retryable(Exception):
    """The transaction was rolled back by a lost connection or a deadlock: run it again."""


P = ParamSpec("P")
R = TypeVar("R")


def _retry_once(method: Callable[P, R]) -> Callable[P, R]:
    """Run a public method again after a lost connection, when that is safe.

    `_tx` raises `_Retryable` only when the transaction cannot have committed,
    so running the whole method again cannot apply anything twice.
    """

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except _Retryable as first:
            log.warning("%s: %s; retrying once", method.__name__, first.__cause__)
        try:
            return method(*args, **kwargs)
        except _Retryable as second:
            raise ServiceUnavailable(
                f"The database connection failed twice: {second.__cause__}"
            ) from second.__cause__

    return wrapper


def _to_milli(credits: float, field: str) -> int:
    if not math.isfinite(credits):
        raise InvalidParameter(field, f"{field} must be a finite number.")
    return round(credits * MILLI_PER_CREDIT)


def _credits(milli: int) -> float:
    return milli / MILLI_PER_CREDIT


def _new_id() -> str:
    # 128 random bits; hex keeps ids safe in URLs, paths and shell arguments.
    return secrets.token_hex(16)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


class JobStore:
    def __init__(
        self,
        database_url: str,
        *,
        clock: Callable[[], datetime] | None = None,
        idempotency_ttl: timedelta = IDEMPOTENCY_TTL,
    ) -> None:
        """`clock` returns the current tz-aware UTC time; tests move it by hand.

        Leases and run_after are compared with this process's clock, so hosts
        running workers need synchronised clocks (NTP): the skew between them
        must stay well under a lease.
        """
        self._engine: Engine = make_engine(database_url)
        self._dialect = self._engine.dialect.name
        self._clock = clock or (lambda: datetime.now(UTC))
        self._idempotency_ttl = idempotency_ttl
        # PostgreSQL LISTEN connections, one per thread that waits for work.
        self._listeners = threading.local()
        self._all_listeners: list[psycopg.Connection[Any]] = []
        self._listeners_lock = threading.Lock()

    @property
    def dialect(self) -> str:
        """The backend in use: "sqlite" or "postgresql"."""
        return self._dialect

    @property
    def engine(self) -> Engine:
        """For admin tools and tests; services use the methods below."""
        return self._engine

    # -- lifecycle ---------------------------------------------------------

    def migrate(self) -> None:
        """Create or upgrade the schema to the newest migration; safe to run from
        several processes at once (they serialise on a lock) and to repeat."""
        config = alembic_config()
        # Alembic runs env.py through module-global state (alembic.context), so
        # two threads of one process must not migrate at the same time.
        with _MIGRATE_LOCK, self._tx() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "head")

    @_retry_once
    def ping(self) -> None:
        with self._tx(write=False) as conn:
            conn.execute(select(1)).scalar_one()

    def close(self) -> None:
        with self._listeners_lock:
            listeners, self._all_listeners = self._all_listeners, []
        for listener in listeners:
            try:
                listener.close()
            except Exception:  # noqa: BLE001 - closing a dead connection may fail; nothing to do
                pass
        self._engine.dispose()

    # -- accounts and keys -------------------------------------------------

    @_retry_once
    def create_account(
        self,
        name: str,
        *,
        plan: str = "dev",
        credits: float = 0.0,
        rate_limit_per_minute: int = 60,
        allowed_operations: list[str] | None = None,
        max_concurrent_jobs: int = 4,
    ) -> AccountRecord:
        if not name.strip():
            raise InvalidParameter("name", "An account needs a name.")
        if rate_limit_per_minute < 1:
            raise InvalidParameter(
                "rate_limit_per_minute", "rate_limit_per_minute must be at least 1."
            )
        if max_concurrent_jobs < 1:
            raise InvalidParameter("max_concurrent_jobs", "max_concurrent_jobs must be at least 1.")
        milli = _to_milli(credits, "credits")
        if milli < 0:
            raise InvalidParameter("credits", "Initial credits cannot be negative.")
        now = self._clock()
        account_id = _new_id()
        with self._tx() as conn:
            conn.execute(
                insert(accounts).values(
                    id=account_id,
                    name=name,
                    plan=plan,
                    rate_limit_per_minute=rate_limit_per_minute,
                    allowed_operations=list(allowed_operations or []),
                    webhook_secret=secrets.token_hex(32),
                    max_concurrent_jobs=max_concurrent_jobs,
                    created_at=now,
                )
            )
            if milli:
                conn.execute(
                    insert(ledger).values(
                        account_id=account_id, delta_milli=milli, reason="grant", created_at=now
                    )
                )
            return self._load_account(conn, account_id)

    @_retry_once
    def get_account(self, account_id: str) -> AccountRecord:
        with self._tx(write=False) as conn:
            return self._load_account(conn, account_id)

    def create_api_key(self, account_id: str) -> tuple[str, ApiKeyRecord]:
        """A new key for the account: (plaintext, shown once and never stored; record)."""
        for _ in range(3):
            generated = keylib.generate_key()
            try:
                record = self._insert_key(account_id, generated)
            except IntegrityError:
                # 32-bit visible prefixes can collide; the secret part is what
                # matters, so draw a fresh key.
                continue
            return generated.plaintext, record
        raise ServiceUnavailable("Could not allocate a unique API key prefix; try again.")

    @_retry_once
    def _insert_key(self, account_id: str, generated: keylib.GeneratedKey) -> ApiKeyRecord:
        with self._tx() as conn:
            self._load_account(conn, account_id)
            key_id = _new_id()
            conn.execute(
                insert(api_keys).values(
                    id=key_id,
                    account_id=account_id,
                    prefix=generated.prefix,
                    key_hash=generated.key_hash,
                    created_at=self._clock(),
                    revoked_at=None,
                )
            )
            row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).one()
            return _key_record(row)

    @_retry_once
    def authenticate(self, plaintext_key: str) -> tuple[AccountRecord, ApiKeyRecord] | None:
        """The key's account and record, or None for a malformed, unknown or revoked key."""
        prefix = keylib.prefix_of(plaintext_key)
        if prefix is None:
            return None
        with self._tx(write=False) as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.prefix == prefix)).first()
            # Compare even when the prefix is unknown, so both answers take as long.
            stored_hash = row.key_hash if row is not None else "0" * 64
            if not keylib.verify_key(plaintext_key, stored_hash) or row is None:
                return None
            if row.revoked_at is not None:
                return None
            return self._load_account(conn, row.account_id), _key_record(row)

    @_retry_once
    def list_keys(self, account_id: str | None = None) -> list[ApiKeyRecord]:
        query = select(api_keys).order_by(api_keys.c.created_at, api_keys.c.id)
        if account_id is not None:
            query = query.where(api_keys.c.account_id == account_id)
        with self._tx(write=False) as conn:
            return [_key_record(row) for row in conn.execute(query)]

    @_retry_once
    def revoke_key(self, key_id_or_prefix: str) -> ApiKeyRecord:
        """Revoke by key id or visible prefix; revoking a revoked key changes nothing."""
        match = or_(api_keys.c.id == key_id_or_prefix, api_keys.c.prefix == key_id_or_prefix)
        with self._tx() as conn:
            conn.execute(
                update(api_keys)
                .where(match, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=self._clock())
            )
            row = conn.execute(select(api_keys).where(match)).first()
            if row is None:
                raise NotFound(f"No API key with id or prefix {key_id_or_prefix!r}.")
            return _key_record(row)

    @_retry_once
    def add_credits(self, account_id: str, amount: float, reason: str = "grant") -> float:
        """Append a ledger row and return the new balance. A negative amount (an
        "adjustment") may not take the balance below zero."""
        if reason not in MANUAL_LEDGER_REASONS:
            raise InvalidParameter(
                "reason", f"reason must be one of {', '.join(MANUAL_LEDGER_REASONS)}."
            )
        milli = _to_milli(amount, "amount")
        if milli == 0:
            raise InvalidParameter("amount", "amount must be non-zero (in steps of 0.001).")
        with self._tx() as conn:
            self._lock_account(conn, account_id)
            balance = self._balance_milli(conn, account_id)
            if balance + milli < 0:
                raise InsufficientCredits(
                    f"Removing {_credits(-milli)} credits would leave a negative balance "
                    f"(available: {_credits(balance)}).",
                    extra={"required": _credits(-milli), "available": _credits(balance)},
                )
            conn.execute(
                insert(ledger).values(
                    account_id=account_id,
                    delta_milli=milli,
                    reason=reason,
                    created_at=self._clock(),
                )
            )
            return _credits(balance + milli)

    @_retry_once
    def balance(self, account_id: str) -> float:
        with self._tx(write=False) as conn:
            self._load_account(conn, account_id)
            return _credits(self._balance_milli(conn, account_id))

    # -- jobs: the API side ------------------------------------------------

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
        try:
            return self._submit(job_values, milli, blocked_reason)
        except IntegrityError:
            if idempotency_key is None:
                raise
            # Another submit with the same key committed between our lookup and
            # our insert (the key's primary key stopped us); this run finds it.
            return self._submit(job_values, milli, blocked_reason)

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
                    raise InsufficientCredits(
                        f"This request needs {_credits(milli)} credits; "
                        f"the account has {_credits(available)}.",
                        extra={"required": _credits(milli), "available": _credits(available)},
                    )
            conn.execute(insert(jobs).values(**values))
            if values["credits_milli"]:
                conn.execute(
                    insert(ledger).values(
                        account_id=account_id,
                        job_id=job_id,
                        delta_milli=-milli,
                        reason="charge",
                        created_at=now,
                    )
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
                self._notify(conn)
            return self._load_job(conn, job_id), False

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
            raise LightboxError(
                "This Idempotency-Key was already used with a different request.",
                code="idempotency_conflict",
                guidance="Send a new Idempotency-Key for a new request, or resend the original "
                "request unchanged to get its job.",
                extra={"job_id": row.job_id},
            )
        return self._load_job(conn, row.job_id)

    @_retry_once
    def get(self, job_id: str, account_id: str | None = None) -> JobRecord:
        """The job; NotFound if unknown or (with account_id) another account's."""
        with self._tx(write=False) as conn:
            return self._load_job(conn, job_id, account_id)

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
            records = [_job_record(row) for row in conn.execute(query)]
        if len(records) <= limit:
            return records, None
        records = records[:limit]
        return records, _encode_cursor(records[-1].created_at, records[-1].id)

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
            return self._load_job(conn, job_id)

    # -- the queue: the worker side ----------------------------------------

    @_retry_once
    def claim(self, worker_id: str, lease_seconds: float) -> JobRecord | None:
        """Lease the oldest runnable job to `worker_id`, or None if there is none.

        Runnable: queued with run_after passed and its account under
        max_concurrent_jobs, or processing with an expired lease (its worker
        died). An expired job already at max_attempts is failed
        ("attempts_exhausted") and refunded instead.
        """
        if not lease_seconds > 0:
            raise InvalidParameter("lease_seconds", "lease_seconds must be positive.")
        with self._tx() as conn:
            now = self._clock()
            capped_accounts: set[str] = set()
            for _ in range(MAX_CLAIM_CANDIDATES):
                # Per candidate, so that passing over a capped account rolls back
                # to here and releases its row locks: a claim never holds one
                # account's lock while waiting for another's.
                savepoint = conn.begin_nested()
                query = (
                    select(jobs)
                    .where(_runnable(now))
                    .order_by(jobs.c.created_at, jobs.c.id)
                    .limit(1)
                    .with_for_update(skip_locked=True, of=jobs)
                )
                if capped_accounts:
                    query = query.where(jobs.c.account_id.not_in(capped_accounts))
                row = conn.execute(query).first()
                if row is None:
                    savepoint.rollback()
                    return None
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
                account = self._lock_account(conn, row.account_id)
                if self._alive_leases(conn, row.account_id, now, exclude=row.id) >= (
                    account.max_concurrent_jobs
                ):
                    savepoint.rollback()
                    capped_accounts.add(row.account_id)
                    continue
                changed = conn.execute(
                    update(jobs)
                    .where(
                        jobs.c.id == row.id,
                        jobs.c.status == row.status,
                        jobs.c.attempts == row.attempts,
                    )
                    .values(
                        status=STATUS_PROCESSING,
                        lease_owner=worker_id,
                        lease_expires_at=now + timedelta(seconds=lease_seconds),
                        attempts=row.attempts + 1,
                        started_at=row.started_at or now,
                        stage=None,
                        attempt_errors=attempt_errors,
                    )
                ).rowcount
                savepoint.commit()
                if changed == 1:
                    return self._load_job(conn, row.id)
            return None

    @_retry_once
    def heartbeat(
        self, job_id: str, worker_id: str, lease_seconds: float, stage: str | None = None
    ) -> bool:
        """Extend the lease (and record the running stage); False if the lease was lost."""
        if not lease_seconds > 0:
            raise InvalidParameter("lease_seconds", "lease_seconds must be positive.")
        values: dict[str, Any] = {
            "lease_expires_at": self._clock() + timedelta(seconds=lease_seconds)
        }
        if stage is not None:
            values["stage"] = stage
        with self._tx() as conn:
            changed = conn.execute(
                update(jobs).where(_held_by(job_id, worker_id)).values(**values)
            ).rowcount
            return changed == 1

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
        with self._tx() as conn:
            now = self._clock()
            changed = conn.execute(
                update(jobs)
                .where(_held_by(job_id, worker_id))
                .values(
                    status=STATUS_COMPLETED,
                    completed_at=now,
                    output_key=output_key,
                    output_expires_at=now + timedelta(seconds=output_ttl_seconds),
                    width=width,
                    height=height,
                    format=format,
                    processing_ms=processing_ms,
                    engines=dict(engines),
                    pipeline=list(pipeline),
                    error_code=None,
                    error_message=None,
                    lease_expires_at=None,
                    stage=None,
                )
            ).rowcount
            if changed == 1:
                # A concurrency slot of the account is free again.
                self._notify(conn)
            return changed == 1

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

    def wait_for_work(self, timeout: float) -> None:
        """Return when a claim may succeed, or after `timeout` seconds.

        PostgreSQL: sleeps on LISTEN until a submit, requeue or freed slot
        NOTIFYs, or until the next scheduled retry or lease expiry is due.
        SQLite: polls for claimable work with a growing sleep (0.05 s up to 1 s).
        Either may return early; callers loop on claim().
        """
        if timeout <= 0:
            return
        deadline = time.monotonic() + timeout
        if self._dialect == "postgresql":
            self._wait_postgres(deadline)
        else:
            self._wait_polling(deadline, timeout)

    @_retry_once
    def queue_depth(self) -> int:
        """Jobs waiting in the queue (including those waiting out a retry back-off)."""
        with self._tx(write=False) as conn:
            return conn.execute(
                select(func.count()).select_from(jobs).where(jobs.c.status == STATUS_QUEUED)
            ).scalar_one()

    @_retry_once
    def purge_expired_idempotency_keys(self) -> int:
        """Delete idempotency keys past their window; returns how many. Expired
        keys are already ignored, this only reclaims space."""
        with self._tx() as conn:
            return conn.execute(
                delete(idempotency_keys).where(idempotency_keys.c.expires_at <= self._clock())
            ).rowcount

    # -- internals ---------------------------------------------------------

    @contextmanager
    def _tx(self, *, write: bool = True) -> Iterator[Connection]:
        """One transaction; commits when the body returns.

        A connection lost (or a deadlock) before the commit is reported as
        `_Retryable`: the database rolled the transaction back. A connection
        lost during the commit is not retryable: it may have committed.
        """
        body_done = False
        try:
            with self._engine.connect() as conn:
                conn.execution_options(**{WRITE_OPTION: write})
                with conn.begin():
                    yield conn
                    body_done = True
        except DBAPIError as exc:
            if exc.connection_invalidated or _sqlstate(exc) in _RETRYABLE_SQLSTATES:
                if body_done:
                    raise ServiceUnavailable(
                        "The database connection was lost while committing; "
                        "the change may or may not have been saved."
                    ) from exc
                raise _Retryable(str(exc.orig)) from exc
            if isinstance(exc, OperationalError):
                raise ServiceUnavailable(f"The database is unavailable: {exc.orig}") from exc
            raise

    def _load_account(self, conn: Connection, account_id: str) -> AccountRecord:
        row = conn.execute(select(accounts).where(accounts.c.id == account_id)).first()
        if row is None:
            raise NotFound(f"No account with id {account_id!r}.")
        return _account_record(row)

    def _lock_account(self, conn: Connection, account_id: str) -> AccountRecord:
        # NO KEY UPDATE: serialises balance checks and concurrency counts of one
        # account without blocking foreign-key checks of ledger and job inserts.
        row = conn.execute(
            select(accounts).where(accounts.c.id == account_id).with_for_update(key_share=True)
        ).first()
        if row is None:
            raise NotFound(f"No account with id {account_id!r}.")
        return _account_record(row)

    def _load_job(self, conn: Connection, job_id: str, account_id: str | None = None) -> JobRecord:
        query = select(jobs).where(jobs.c.id == job_id)
        if account_id is not None:
            query = query.where(jobs.c.account_id == account_id)
        row = conn.execute(query).first()
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

    def _balance_milli(self, conn: Connection, account_id: str) -> int:
        return int(
            conn.execute(
                select(func.coalesce(func.sum(ledger.c.delta_milli), 0)).where(
                    ledger.c.account_id == account_id
                )
            ).scalar_one()
        )

    def _alive_leases(self, conn: Connection, account_id: str, now: datetime, exclude: str) -> int:
        return conn.execute(
            select(func.count())
            .select_from(jobs)
            .where(
                jobs.c.account_id == account_id,
                jobs.c.status == STATUS_PROCESSING,
                jobs.c.lease_expires_at > now,
                jobs.c.id != exclude,
            )
        ).scalar_one()

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

    def _refund(self, conn: Connection, row: Row[Any], now: datetime) -> None:
        if not row.credits_milli:
            return
        refund = (
            _insert_ignoring_conflicts(self._dialect, ledger)
            .values(
                account_id=row.account_id,
                job_id=row.id,
                delta_milli=row.credits_milli,
                reason="refund",
                created_at=now,
            )
            .returning(ledger.c.id)
        )
        # No row back: this job was refunded before (the unique constraint held).
        if conn.execute(refund).first() is not None:
            conn.execute(update(jobs).where(jobs.c.id == row.id).values(refunded_at=now))

    def _notify(self, conn: Connection) -> None:
        # Delivered on commit; a rolled-back transaction wakes nobody.
        if self._dialect == "postgresql":
            conn.execute(select(func.pg_notify(NOTIFY_CHANNEL, "")))

    def _seconds_until_due(self) -> tuple[bool, float | None]:
        """(claimable now, seconds until the next retry or lease expiry falls due)."""
        with self._tx(write=False) as conn:
            now = self._clock()
            runnable = conn.execute(select(jobs.c.id).where(_runnable(now)).limit(1)).first()
            next_due = conn.execute(
                select(
                    func.min(jobs.c.run_after).filter(
                        jobs.c.status == STATUS_QUEUED, jobs.c.run_after > now
                    ),
                    func.min(jobs.c.lease_expires_at).filter(
                        jobs.c.status == STATUS_PROCESSING, jobs.c.lease_expires_at > now
                    ),
                )
            ).one()
        due = [moment for moment in next_due if moment is not None]
        if not due:
            return runnable is not None, None
        # Naive values can come back from an aggregate on SQLite, which loses the column type.
        soonest = min(_as_utc(moment) for moment in due)
        return runnable is not None, max(0.0, (soonest - now).total_seconds())

    def _wait_polling(self, deadline: float, timeout: float) -> None:
        sleep = min(POLL_FIRST_SLEEP_SECONDS, timeout)
        cap = min(POLL_MAX_SLEEP_SECONDS, timeout)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            time.sleep(min(sleep, remaining))
            sleep = min(sleep * 2, cap)
            try:
                claimable, _ = self._seconds_until_due()
            except (_Retryable, ServiceUnavailable) as exc:
                log.warning("wait_for_work: %s", exc)
                continue
            if claimable:
                return

    def _wait_postgres(self, deadline: float) -> None:
        listener, fresh = self._listener()
        if listener is None:
            # The database is unreachable: wait out a bounded pause rather than spin.
            time.sleep(max(0.0, min(POLL_MAX_SLEEP_SECONDS, deadline - time.monotonic())))
            return
        if fresh:
            # Notifications sent before LISTEN began are lost; the caller claims again.
            return
        try:
            # Anything already delivered since the last wait means work may exist.
            if any(True for _ in listener.notifies(timeout=0)):
                return
            claimable, due_in = self._seconds_until_due()
            if claimable:
                return
            wait = deadline - time.monotonic()
            if due_in is not None:
                wait = min(wait, due_in)
            if wait > 0:
                for _ in listener.notifies(timeout=wait, stop_after=1):
                    pass
        except (_Retryable, ServiceUnavailable) as exc:
            log.warning("wait_for_work: %s", exc)
        except psycopg.Error as exc:
            log.warning("wait_for_work: LISTEN connection lost (%s); reconnecting", exc)
            self._drop_listener(listener)

    def _listener(self) -> tuple[psycopg.Connection[Any] | None, bool]:
        """This thread's LISTENing psycopg connection and whether it is new."""
        listener = getattr(self._listeners, "conn", None)
        if listener is not None and not listener.closed:
            return listener, False
        # A connection of its own, outside the pool: it is held for the life of
        # the worker thread and must not take a slot meant for transactions.
        conninfo = self._engine.url.set(drivername="postgresql").render_as_string(
            hide_password=False
        )
        try:
            listener = psycopg.connect(conninfo, autocommit=True)
            listener.execute(f"LISTEN {NOTIFY_CHANNEL}")
        except psycopg.Error as exc:
            log.warning("wait_for_work: cannot LISTEN (%s)", exc)
            return None, False
        self._listeners.conn = listener
        with self._listeners_lock:
            self._all_listeners.append(listener)
        return listener, True

    def _drop_listener(self, listener: psycopg.Connection[Any]) -> None:
        self._listeners.conn = None
        with self._listeners_lock:
            if listener in self._all_listeners:
                self._all_listeners.remove(listener)
        try:
            listener.close()
        except Exception:  # noqa: BLE001 - it is already broken
            pass


def _runnable(now: datetime) -> Any:
    """Jobs a claim may take now (the account cap is re-checked under its lock)."""
    running = jobs.alias("running")
    used = (
        select(func.count())
        .where(
            running.c.account_id == jobs.c.account_id,
            running.c.status == STATUS_PROCESSING,
            running.c.lease_expires_at > now,
        )
        .scalar_subquery()
    )
    cap = (
        select(accounts.c.max_concurrent_jobs)
        .where(accounts.c.id == jobs.c.account_id)
        .scalar_subquery()
    )
    return or_(
        and_(jobs.c.status == STATUS_QUEUED, jobs.c.run_after <= now, used < cap),
        and_(jobs.c.status == STATUS_PROCESSING, jobs.c.lease_expires_at <= now),
    )


def _held_by(job_id: str, worker_id: str) -> Any:
    return and_(
        jobs.c.id == job_id,
        jobs.c.status == STATUS_PROCESSING,
        jobs.c.lease_owner == worker_id,
    )


def _backoff_seconds(attempt: int, base: float) -> float:
    return min(MAX_RETRY_DELAY_SECONDS, base * 2 ** (attempt - 1)) * random.uniform(1.0, 2.0)


def _insert_ignoring_conflicts(dialect: str, table: Any) -> Any:
    if dialect == "postgresql":
        return pg_insert(table).on_conflict_do_nothing()
    return sqlite_insert(table).on_conflict_do_nothing()


def _sqlstate(exc: DBAPIError) -> str | None:
    return getattr(exc.orig, "sqlstate", None)


def _as_utc(moment: datetime | str) -> datetime:
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _encode_cursor(created_at: datetime, job_id: str) -> str:
    raw = json.dumps([_iso(created_at), job_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created_at, job_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        moment = datetime.fromisoformat(created_at.replace("Z", "+00:00"))
        if moment.tzinfo is None or not isinstance(job_id, str):
            raise ValueError("incomplete cursor")
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidParameter("cursor", "The cursor is not one this API issued.") from exc
    return moment, job_id


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


def _job_record(row: Row[Any]) -> JobRecord:
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
    )
