"""The jobs service's data layer: accounts, API keys, the credit ledger, jobs
and the durable job queue, on SQLite (embedded) or PostgreSQL (production).

Invariants the rest of the system relies on:
- a balance is the sum of the account's ledger rows; a job has at most one
  charge and one refund row (unique constraint), so however calls race nothing
  is charged or refunded twice. The ledger is append-only (triggers refuse
  updates and deletes) and a trigger keeps `accounts.balance_milli` equal to
  the sum in the same transaction (`verify_ledger` re-derives it);
- a job changes state only through a conditional UPDATE on its current state
  (and, for workers, on holding its lease), so exactly one transition wins;
- a worker owns a processing job until its lease expires; after that any worker
  may claim it again, and a job out of attempts fails and is refunded;
- every state a job enters is appended to `job_events` in the transaction that
  entered it, and a job with a webhook_url that reaches a terminal state gets
  its `webhooks` outbox row in that same transaction, so no webhook is lost to
  a crash between the two.

Writers serialise per account on PostgreSQL (`SELECT ... FOR NO KEY UPDATE` on
the account row) and globally on SQLite (`BEGIN IMMEDIATE`, see db.py).
Lock order is always job row, then account row, which keeps PostgreSQL free of
deadlocks between claims, cancels and submits. Claims check the account's
concurrency cap, not its balance, so on PostgreSQL they serialise on a
transaction advisory lock of their own per account (in lightbox_claim) instead
of the row: a busy account's claims do not queue behind its submits' commits.

On PostgreSQL the hot path (submit, claim, complete) runs as SQL functions
(migration 0003), one round trip each in an implicit transaction; the Python
bodies below are the SQLite implementation and the specification those
functions follow. The store's tests run every rule on both backends.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import functools
import json
import logging
import math
import random
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, ParamSpec, TypeVar

import psycopg
from alembic import command
from psycopg.types.json import Json
from sqlalchemy import (
    Engine,
    and_,
    bindparam,
    delete,
    exists,
    func,
    insert,
    literal_column,
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
from services.jobs.models import (
    JOB_STATUSES,
    accounts,
    api_keys,
    idempotency_keys,
    job_events,
    jobs,
    ledger,
    webhook_deliveries,
    webhooks,
)

log = logging.getLogger(__name__)

MILLI_PER_CREDIT = 1000
IDEMPOTENCY_TTL = timedelta(hours=24)
# A webhook is attempted for this long after its job ended, then given up.
WEBHOOK_MAX_AGE = timedelta(hours=24)
WEBHOOK_PENDING = "pending"
WEBHOOK_DELIVERED = "delivered"
WEBHOOK_FAILED = "failed"
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
# PostgreSQL: how soon a waiter looks again at work that looked runnable but
# that its claim did not get (another claim was taking it).
CLAIMABLE_RECHECK_SECONDS = 0.05
# PostgreSQL SQLSTATEs for which the whole transaction may simply be run again.
_RETRYABLE_SQLSTATES = {"40001", "40P01"}
# The server ended the session: admin_shutdown (pg_terminate_backend, a fast
# shutdown), crash_shutdown, cannot_connect_now.
_TERMINATED_SQLSTATES = {"57P01", "57P02", "57P03"}

STATUS_QUEUED = "queued"
STATUS_PROCESSING = "processing"
STATUS_COMPLETED = "completed"
STATUS_FAILED = "failed"
STATUS_BLOCKED = "blocked"
STATUS_CANCELED = "canceled"
TERMINAL_STATUSES = frozenset({STATUS_COMPLETED, STATUS_FAILED, STATUS_BLOCKED, STATUS_CANCELED})

_MIGRATE_LOCK = threading.Lock()

# The first key of the per-account advisory locks lightbox_claim takes
# (migration 0003 holds the same value); any constant works as long as nothing
# else in the database uses it.
_CLAIM_LOCK_CLASS = 0x4C42_434C

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
        self._engine.dispose()
        if self._statements is not None:
            self._statements.dispose()

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

    @_retry_once
    def verify_ledger(self) -> list[LedgerMismatch]:
        """Accounts whose running balance differs from the sum of their ledger
        rows (none, unless someone wrote to the tables around the store)."""
        sums = (
            select(ledger.c.account_id, func.sum(ledger.c.delta_milli).label("total"))
            .group_by(ledger.c.account_id)
            .subquery()
        )
        derived = func.coalesce(sums.c.total, 0)
        with self._tx(write=False) as conn:
            rows = conn.execute(
                select(accounts.c.id, accounts.c.balance_milli, derived)
                .select_from(accounts.outerjoin(sums, sums.c.account_id == accounts.c.id))
                .where(accounts.c.balance_milli != derived)
                .order_by(accounts.c.id)
            ).all()
        return [LedgerMismatch(r[0], _credits(r[1]), _credits(int(r[2]))) for r in rows]

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

    # -- the queue: the worker side ----------------------------------------

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
                select(func.count()).select_from(jobs).where(_status_is(jobs, STATUS_QUEUED))
            ).scalar_one()

    @_retry_once
    def purge_expired_idempotency_keys(self) -> int:
        """Delete idempotency keys past their window; returns how many. Expired
        keys are already ignored, this only reclaims space."""
        with self._tx() as conn:
            return conn.execute(
                delete(idempotency_keys).where(idempotency_keys.c.expires_at <= self._clock())
            ).rowcount

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
    def rotate_webhook_secret(self, account_id: str) -> AccountRecord:
        """A fresh webhook signing secret for the account; the old one stops
        signing at once (deliveries already in flight were signed with it)."""
        with self._tx() as conn:
            self._lock_account(conn, account_id)
            conn.execute(
                update(accounts)
                .where(accounts.c.id == account_id)
                .values(webhook_secret=secrets.token_hex(32))
            )
            return self._load_account(conn, account_id)

    # -- webhooks: the outbox ------------------------------------------------

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

    # -- retention -----------------------------------------------------------

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

    # -- internals ---------------------------------------------------------

    @contextmanager
    def _tx(self, *, write: bool = True, durable: bool = True) -> Iterator[Connection]:
        """One transaction; commits when the body returns.

        A connection lost (or a deadlock) before the commit is reported as
        `_Retryable`: the database rolled the transaction back. A connection
        lost during the commit is not retryable: it may have committed.

        `durable=False` (PostgreSQL) commits without waiting for the WAL
        flush. Only for changes the queue heals by itself if a server crash
        loses them: a lost claim or heartbeat leaves a lease that expires,
        and the job runs again. Money, job outcomes and webhook results are
        always durable.
        """
        body_done = False
        try:
            with self._engine.connect() as conn:
                conn.execution_options(**{WRITE_OPTION: write})
                with conn.begin():
                    if not durable:
                        self._commit_asynchronously(conn)
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

    @contextmanager
    def _statement(self, *, retry_safe: bool) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection's psycopg connection for one statement that is
        its own transaction (PostgreSQL's implicit transaction: no BEGIN and
        COMMIT round trips). The queue's hot path talks to the driver directly:
        there SQLAlchemy's statement layer (compiling, binding, result
        processing) cost more CPU than the database spent on the statement.

        The statement and its commit are one step, so a connection lost during
        it leaves the outcome unknown: `_Retryable` only if `retry_safe`
        (running it again cannot do harm), otherwise ServiceUnavailable. An
        aborted statement (deadlock, serialisation failure) did nothing and is
        always retryable, and so is a session the server terminated (it holds
        interrupts while committing: a statement it cut short did not commit).
        """
        assert self._statements is not None, "PostgreSQL only"
        try:
            pooled = self._statements.raw_connection()
        except DBAPIError as exc:
            raise ServiceUnavailable(f"The database is unavailable: {exc.orig}") from exc
        driver = pooled.driver_connection
        try:
            try:
                yield driver
            except psycopg.Error as exc:
                lost = driver.broken or driver.closed
                if lost:
                    pooled.invalidate(exc)
                if exc.sqlstate in _RETRYABLE_SQLSTATES | _TERMINATED_SQLSTATES or (
                    lost and retry_safe
                ):
                    raise _Retryable(str(exc)) from exc
                if lost:
                    raise ServiceUnavailable(
                        "The database connection was lost while committing; "
                        "the change may or may not have been saved."
                    ) from exc
                if isinstance(exc, psycopg.OperationalError):
                    raise ServiceUnavailable(f"The database is unavailable: {exc}") from exc
                raise
        finally:
            pooled.close()

    def _commit_asynchronously(self, conn: Connection) -> None:
        """See `_tx(durable=False)`; from within the transaction."""
        if self._dialect == "postgresql":
            conn.exec_driver_sql("SET LOCAL synchronous_commit = off")

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

    def _load_account(self, conn: Connection, account_id: str) -> AccountRecord:
        row = conn.execute(select(accounts).where(accounts.c.id == account_id)).first()
        if row is None:
            raise NotFound(f"No account with id {account_id!r}.")
        return _account_record(row)

    def _lock_account(self, conn: Connection, account_id: str) -> AccountRecord:
        # NO KEY UPDATE: serialises balance checks and concurrency counts of one
        # account without blocking foreign-key checks of ledger and job inserts.
        row = conn.execute(_LOCK_ACCOUNT, {"account_id": account_id}).first()
        if row is None:
            raise NotFound(f"No account with id {account_id!r}.")
        return _account_record(row)

    def _account_cap(self, conn: Connection, account_id: str) -> int:
        """The account's max_concurrent_jobs (SQLite claims are serialised by
        BEGIN IMMEDIATE, so the cap check needs no lock of its own)."""
        cap = conn.execute(_ACCOUNT_CAP, {"account_id": account_id}).scalar()
        if cap is None:
            raise NotFound(f"No account with id {account_id!r}.")
        return int(cap)

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

    def _balance_milli(self, conn: Connection, account_id: str) -> int:
        return int(conn.execute(_BALANCE, {"account_id": account_id}).scalar_one())

    def _alive_leases(self, conn: Connection, account_id: str, now: datetime, exclude: str) -> int:
        return int(
            conn.execute(
                _ALIVE_LEASES, {"account_id": account_id, "now": now, "exclude": exclude}
            ).scalar_one()
        )

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
            conn.execute(_NOTIFY)

    def _claimable(self, conn: Connection, now: datetime) -> bool:
        """Whether a claim would find a job now (SQLite, where claims are
        serialised anyway; PostgreSQL's is part of lightbox_next_due)."""
        probes = [
            exists(query.with_only_columns(jobs.c.id).order_by(None))
            for query in _claim_candidates(now)
        ]
        return bool(conn.execute(select(or_(*probes))).scalar_one())

    def _seconds_until_due(self) -> tuple[bool, float | None]:
        """(claimable now, seconds until the next retry or lease expiry falls due)."""
        if self._dialect == "postgresql":
            return self._seconds_until_due_postgres()
        with self._tx(write=False) as conn:
            now = self._clock()
            runnable = self._claimable(conn, now)
            # Two index lookups rather than one filtered aggregate, which
            # would read the whole table.
            next_due = (
                conn.execute(
                    select(func.min(jobs.c.run_after)).where(
                        _status_is(jobs, STATUS_QUEUED), jobs.c.run_after > now
                    )
                ).scalar_one(),
                conn.execute(
                    select(func.min(jobs.c.lease_expires_at)).where(
                        _status_is(jobs, STATUS_PROCESSING), jobs.c.lease_expires_at > now
                    )
                ).scalar_one(),
            )
        due = [moment for moment in next_due if moment is not None]
        if not due:
            return runnable, None
        # Naive values can come back from an aggregate on SQLite, which loses the column type.
        soonest = min(_as_utc(moment) for moment in due)
        return runnable, max(0.0, (soonest - now).total_seconds())

    @_retry_once
    def _seconds_until_due_postgres(self) -> tuple[bool, float | None]:
        """`_seconds_until_due` as one call of lightbox_next_due (migration 0004)."""
        now = self._clock()
        with self._statement(retry_safe=True) as driver:
            row = driver.execute(_NEXT_DUE_PG, (now,), prepare=True).fetchone()
        assert row is not None
        claimable, due = row
        if due is None:
            return bool(claimable), None
        return bool(claimable), max(0.0, (due - now).total_seconds())

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
                with self._tx(write=False) as conn:
                    claimable = self._claimable(conn, self._clock())
            except (_Retryable, ServiceUnavailable) as exc:
                log.warning("wait_for_work: %s", exc)
                continue
            if claimable:
                return

    def _claim_starts(self) -> None:
        """Note, for this thread, how many notifications had arrived when its
        claim began: the claim saw every job they announced, so if it found
        nothing, none of them is a reason to claim again."""
        notifier = self._notifier
        if notifier is not None:
            self._claims.mark = notifier.mark()

    def _wait_postgres(self, deadline: float) -> None:
        notifier, fresh = self._listening()
        if fresh:
            # Notifications sent before LISTEN began are lost; the caller claims again.
            return
        mark = getattr(self._claims, "mark", None)
        # A notification this thread's last claim could not have seen means work may exist.
        if notifier.take(mark):
            return
        try:
            claimable, due_in = self._seconds_until_due()
        except (_Retryable, ServiceUnavailable) as exc:
            log.warning("wait_for_work: %s", exc)
            claimable, due_in = False, POLL_MAX_SLEEP_SECONDS
        wait = deadline - time.monotonic()
        if claimable:
            # The caller's claim just found nothing, yet a job looks runnable:
            # another claim is taking it, it fell due a moment ago, or its
            # account is at its cap (an expired lease). Look again soon, not at
            # once: never a tight loop.
            wait = min(wait, CLAIMABLE_RECHECK_SECONDS * random.uniform(0.5, 1.5))
        elif due_in is not None:
            wait = min(wait, due_in)
        if wait > 0:
            notifier.wait(wait, mark)

    def _listening(self) -> tuple[_Notifier, bool]:
        """The store's notifier, started on first use (and whether it was just started)."""
        with self._notifier_lock:
            if self._notifier is not None:
                return self._notifier, False
            # A connection of its own, outside the pool: it is held for the life
            # of the store and must not take a slot meant for transactions.
            conninfo = self._engine.url.set(drivername="postgresql").render_as_string(
                hide_password=False
            )
            self._notifier = _Notifier(conninfo)
            self._notifier.start()
            return self._notifier, True


class _Notifier:
    """One LISTEN connection per store, read by a daemon thread. Each
    notification wakes one waiting thread, not all of them: a submit must not
    send every idle worker thread of a process racing for the one new job.

    Wake-ups are counted, not queued: notifications that arrived while every
    thread was busy are owed to the next threads that wait, except those a
    claim has made moot. A claim that began after a notification arrived saw
    the job it announced; if it came back empty, that job is taken (or not
    yet due, which the waiter's look-ahead covers). So a waiter passes the
    mark() taken when its last claim began, and notifications up to it are
    settled for everyone. Without that, a burst of submits during busy work
    left dozens of wake-ups owed, each one an empty claim later.

    A (re)connection starts a new epoch, which wakes every waiter and every
    thread whose last claim began in an earlier epoch: notifications may have
    been missed while the connection was down.
    """

    def __init__(self, conninfo: str) -> None:
        self._conninfo = conninfo
        self._cond = threading.Condition()
        self._epoch = 0
        self._received = 0  # notifications read in this epoch
        self._settled = 0  # of those, handed to a waiter or made moot by a claim
        self._stopped = threading.Event()
        self._conn: psycopg.Connection[Any] | None = None
        self._thread = threading.Thread(target=self._read, name="listen", daemon=True)

    def start(self) -> None:
        # LISTEN in the caller's thread: a notification sent once start()
        # returned is not missed.
        self._connect()
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._close()
        with self._cond:
            self._epoch += 1
            self._cond.notify_all()

    def mark(self) -> tuple[int, int]:
        """(epoch, notifications received so far): taken when a claim begins."""
        with self._cond:
            return self._epoch, self._received

    def take(self, mark: tuple[int, int] | None) -> bool:
        """Whether a wake-up is owed to a thread whose last claim began at
        `mark` (None: it never claimed); consumes it."""
        with self._cond:
            return self._take(mark)

    def wait(self, timeout: float, mark: tuple[int, int] | None) -> None:
        """Until a wake-up is owed (one waiter per notification), a new epoch,
        or the timeout."""
        with self._cond:
            if self._take(mark):
                return
            epoch = self._epoch
            self._cond.wait_for(
                lambda: self._epoch != epoch or self._received > self._settled, timeout
            )
            if self._epoch == epoch and self._received > self._settled:
                self._settled += 1

    def _take(self, mark: tuple[int, int] | None) -> bool:
        if mark is not None:
            epoch, seen = mark
            if epoch != self._epoch:
                return True
            self._settled = max(self._settled, seen)
        if self._received > self._settled:
            self._settled += 1
            return True
        return False

    def _wake(self, everyone: bool = False) -> None:
        with self._cond:
            if everyone:
                self._epoch += 1
                self._received = self._settled = 0
                self._cond.notify_all()
            else:
                self._received += 1
                self._cond.notify(1)

    def _connect(self) -> bool:
        try:
            conn = psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5)
            conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
        except psycopg.Error as exc:
            log.warning("wait_for_work: cannot LISTEN (%s)", exc)
            return False
        self._conn = conn
        return True

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - it may already be broken
                pass

    def _read(self) -> None:
        delay = POLL_FIRST_SLEEP_SECONDS
        while not self._stopped.is_set():
            conn = self._conn
            if conn is None or conn.closed:
                if not self._connect():
                    self._stopped.wait(delay)
                    delay = min(delay * 2, POLL_MAX_SLEEP_SECONDS)
                    continue
                delay = POLL_FIRST_SLEEP_SECONDS
                self._wake(everyone=True)
                continue
            try:
                for _ in conn.notifies(timeout=POLL_MAX_SLEEP_SECONDS):
                    self._wake()
            except psycopg.Error as exc:
                if self._stopped.is_set():
                    return
                log.warning("wait_for_work: LISTEN connection lost (%s); reconnecting", exc)
                self._close()


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


def _status_is(table: Any, status: str) -> Any:
    """`table.status = '<status>'` with the status as a literal, not a bound
    parameter: the partial indexes of 0004 are conditioned on it, and the
    generic plan PostgreSQL settles on for a statement prepared and run many
    times cannot see a bound value, so it could not use them. (SQLite looks at
    bound values when it chooses.)"""
    assert status in JOB_STATUSES
    return table.c.status == literal_column(f"'{status}'")


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


def _held_by(job_id: str, worker_id: str) -> Any:
    return and_(
        jobs.c.id == job_id,
        jobs.c.status == STATUS_PROCESSING,
        jobs.c.lease_owner == worker_id,
    )


# Hot-path statements, built once: constructing a SQLAlchemy statement costs
# more client CPU than running it. Parameters are bound per call.
_NOW = bindparam("now")
_CLAIM_QUERIES = tuple(
    query.limit(1).with_for_update(skip_locked=True, of=jobs)
    for query in _claim_candidates(_NOW)  # type: ignore[arg-type]
)
_HELD = and_(
    jobs.c.id == bindparam("job_id"),
    jobs.c.status == STATUS_PROCESSING,
    jobs.c.lease_owner == bindparam("worker_id"),
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
_INSERT_EVENT = insert(job_events)
_INSERT_JOB = insert(jobs).returning(*jobs.c)
_INSERT_LEDGER = insert(ledger)
_NOTIFY = select(func.pg_notify(NOTIFY_CHANNEL, ""))
_LOCK_ACCOUNT = (
    select(accounts).where(accounts.c.id == bindparam("account_id")).with_for_update(key_share=True)
)
_BALANCE = select(accounts.c.balance_milli).where(accounts.c.id == bindparam("account_id"))
_LOAD_JOB = select(jobs).where(jobs.c.id == bindparam("job_id"))
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
# JobStore._statement); parameters are positional.
_SUBMIT_PG = (
    "SELECT * FROM lightbox_submit(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
_CLAIM_PG = "SELECT * FROM lightbox_claim(%s, %s, %s, %s, %s)"
_COMPLETE_PG = "SELECT lightbox_complete(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
# Migration 0004: a completion and the worker's next claim in one statement.
_COMPLETE_AND_CLAIM_PG = (
    "SELECT * FROM lightbox_complete_and_claim("
    "%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
_NEXT_DUE_PG = "SELECT claimable, next_due FROM lightbox_next_due(%s)"
# Raised by lightbox_complete_and_claim when the worker no longer holds the lease.
_LEASE_LOST_SQLSTATE = "LB410"


def _utc_row(cursor: psycopg.Cursor[Any]) -> Callable[[Sequence[Any]], SimpleNamespace]:
    """Row factory: attribute access like SQLAlchemy's rows, datetimes in UTC
    as UTCDateTime gives them (the driver uses the session's time zone)."""
    result = cursor.pgresult
    names = _column_names(
        tuple(result.fname(i) or b"" for i in range(result.nfields)) if result else ()
    )

    def make(values: Sequence[Any]) -> SimpleNamespace:
        return SimpleNamespace(
            **{
                name: value.astimezone(UTC) if isinstance(value, datetime) else value
                for name, value in zip(names, values, strict=True)
            }
        )

    return make


@functools.lru_cache(maxsize=16)
def _column_names(raw: tuple[bytes, ...]) -> tuple[str, ...]:
    # cursor.description would build a Column object per column per query.
    return tuple(name.decode() for name in raw)


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


def _insufficient_credits(milli: int, available: int) -> InsufficientCredits:
    return InsufficientCredits(
        f"This request needs {_credits(milli)} credits; the account has {_credits(available)}.",
        extra={"required": _credits(milli), "available": _credits(available)},
    )


def _idempotency_conflict(job_id: str) -> LightboxError:
    return LightboxError(
        "This Idempotency-Key was already used with a different request.",
        code="idempotency_conflict",
        guidance="Send a new Idempotency-Key for a new request, or resend the original "
        "request unchanged to get its job.",
        extra={"job_id": job_id},
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
        if not isinstance(created_at, str):
            raise TypeError("cursor time is not a string")
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
