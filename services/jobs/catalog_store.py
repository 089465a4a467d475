"""The catalogs' data layer: generation profiles and batches of jobs, next to
the JobStore whose tables and transactions they share (docs/catalogs.md).

- A profile version is inserted once and never changed; the next version of a
  name is numbered under the account's lock, so two creators never get the same.
- A batch is created in one transaction with all its jobs: the account is
  locked, items whose idempotency key is live are replayed (no charge), the
  balance must cover every other item or nothing is written (402), then each
  job is inserted, charged and queued exactly as `JobStore.submit` does.
- A batch is settled (running → completed / canceled) by a conditional UPDATE
  once every item's job is terminal; the same transaction makes its webhook
  pending, so the one delivery cannot be lost or doubled. Deliveries are
  claimed under a lease, as job webhooks are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.engine import Connection, Row

from services.common.errors import Conflict, InvalidParameter, LightboxError, NotFound
from services.jobs.models import batch_items, batches, idempotency_keys, jobs, profiles
from services.jobs.store import (
    LIST_LIMIT_MAX,
    STATUS_BLOCKED,
    STATUS_QUEUED,
    TERMINAL_STATUSES,
    WEBHOOK_DELIVERED,
    WEBHOOK_FAILED,
    WEBHOOK_PENDING,
    JobRecord,
    JobStore,
)
from services.jobs.store.jobs import _decode_cursor, _encode_cursor
from services.jobs.store.ledger import _INSERT_LEDGER, _insufficient_credits
from services.jobs.store.plumbing.sql import _as_utc, _new_id
from services.jobs.store.plumbing.tx import _retry_once
from services.jobs.store.records import _credits, _job_record, _to_milli
from services.jobs.store.submit import _INSERT_JOB

BATCH_RUNNING = "running"
BATCH_COMPLETED = "completed"
BATCH_CANCELED = "canceled"
MAX_BATCH_ITEMS = 1000
COUNTED_STATUSES = ("queued", "processing", "completed", "failed", "blocked", "canceled")
# The settler looks at this many running batches per pass, oldest first.
SETTLE_SCAN = 50


def profile_not_found(name: str, version: int | None) -> LightboxError:
    which = f"{name}@{version}" if version else name
    return LightboxError(
        f"There is no profile {which!r} for this account.",
        code="profile_not_found",
        guidance="GET /v1/profiles lists this account's profiles and their versions.",
    )


@dataclass(frozen=True)
class ProfileRecord:
    account_id: str
    name: str
    version: int
    operation: str
    body: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class ProfileSummary:
    name: str
    latest_version: int
    operation: str
    updated_at: datetime


@dataclass(frozen=True)
class BatchItemSpec:
    """One item as the jobs API prepared it: an ordinary job submission."""

    sku: str
    variant: str
    operation: str
    params: dict[str, Any]
    inputs: dict[str, str]
    credits: float
    pipeline: list[str]
    estimated_seconds: int
    idempotency_key: str
    request_fingerprint: str
    max_attempts: int = 3
    blocked_reason: str | None = None


@dataclass(frozen=True)
class BatchItemRecord:
    index: int
    sku: str
    variant: str
    job: JobRecord | None  # None once retention deleted the job's row
    replayed: bool


@dataclass(frozen=True)
class BatchRecord:
    id: str
    account_id: str
    status: str
    operation: str
    profile: str | None
    items_total: int
    credits: float
    created_at: datetime
    finished_at: datetime | None
    canceled_at: datetime | None
    webhook_url: str | None
    webhook_status: str | None
    webhook_attempts: int
    webhook_last_status_code: int | None
    webhook_last_error: str | None
    counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class BatchWebhookTask:
    batch: BatchRecord
    url: str
    attempt: int
    secret: str


class CatalogStore:
    """Profiles and batches over a JobStore's database (its engine and locks)."""

    def __init__(self, store: JobStore) -> None:
        self.store = store

    # -- profiles --------------------------------------------------------------

    @_retry_once
    def create_profile(
        self, account_id: str, name: str, operation: str, body: dict[str, Any]
    ) -> ProfileRecord:
        """Store `body` as the next version of `name` (1 for a new name)."""
        s = self.store
        with s._tx() as conn:
            s._lock_account(conn, account_id)
            latest = conn.execute(
                select(func.max(profiles.c.version)).where(
                    profiles.c.account_id == account_id, profiles.c.name == name
                )
            ).scalar()
            version = int(latest or 0) + 1
            now = s.now()
            conn.execute(
                insert(profiles).values(
                    account_id=account_id,
                    name=name,
                    version=version,
                    operation=operation,
                    body=dict(body),
                    created_at=now,
                )
            )
            return ProfileRecord(account_id, name, version, operation, dict(body), now)

    @_retry_once
    def get_profile(self, account_id: str, name: str, version: int | None = None) -> ProfileRecord:
        """One version (the latest when `version` is None); profile_not_found otherwise."""
        query = select(profiles).where(profiles.c.account_id == account_id, profiles.c.name == name)
        if version is None:
            query = query.order_by(profiles.c.version.desc()).limit(1)
        else:
            query = query.where(profiles.c.version == version)
        with self.store._tx(write=False) as conn:
            row = conn.execute(query).first()
        if row is None:
            raise profile_not_found(name, version)
        return _profile_record(row)

    @_retry_once
    def profile_versions(self, account_id: str, name: str) -> list[ProfileRecord]:
        """Every version of `name`, oldest first; profile_not_found if there is none."""
        with self.store._tx(write=False) as conn:
            rows = conn.execute(
                select(profiles)
                .where(profiles.c.account_id == account_id, profiles.c.name == name)
                .order_by(profiles.c.version)
            ).all()
        if not rows:
            raise profile_not_found(name, None)
        return [_profile_record(r) for r in rows]

    @_retry_once
    def list_profiles(self, account_id: str) -> list[ProfileSummary]:
        """The account's profile names with their latest version, by name."""
        latest = (
            select(profiles.c.name, func.max(profiles.c.version).label("version"))
            .where(profiles.c.account_id == account_id)
            .group_by(profiles.c.name)
            .subquery()
        )
        query = (
            select(profiles.c.name, profiles.c.version, profiles.c.operation, profiles.c.created_at)
            .join(
                latest,
                and_(latest.c.name == profiles.c.name, latest.c.version == profiles.c.version),
            )
            .where(profiles.c.account_id == account_id)
            .order_by(profiles.c.name)
        )
        with self.store._tx(write=False) as conn:
            return [
                ProfileSummary(r.name, r.version, r.operation, r.created_at)
                for r in conn.execute(query)
            ]

    # -- batches -----------------------------------------------------------------

    @_retry_once
    def create_batch(
        self,
        account_id: str,
        *,
        operation: str,
        profile: str | None,
        webhook_url: str | None,
        items: Sequence[BatchItemSpec],
    ) -> tuple[BatchRecord, set[int]]:
        """Queue every item as a job, or nothing (402 when credits fall short).
        Returns the batch and the indexes of items that replayed an earlier job."""
        if not 1 <= len(items) <= MAX_BATCH_ITEMS:
            raise InvalidParameter("items", f"A batch has 1 to {MAX_BATCH_ITEMS} items.")
        keys = [item.idempotency_key for item in items]
        if len(set(keys)) != len(keys):
            raise InvalidParameter("items", "Two items of the batch share an idempotency key.")
        s = self.store
        with s._tx() as conn:
            now = s.now()
            s._lock_account(conn, account_id)
            replays: dict[int, JobRecord] = {}
            needed = 0
            for index, item in enumerate(items):
                try:
                    replay = s._idempotent_replay(
                        conn,
                        account_id,
                        item.idempotency_key,
                        {"request_fingerprint": item.request_fingerprint},
                        now,
                    )
                except LightboxError as err:
                    # Which item: the key was used before for other content.
                    err.extra.update(
                        index=index, sku=item.sku, idempotency_key=item.idempotency_key
                    )
                    raise
                if replay is not None:
                    replays[index] = replay
                elif item.blocked_reason is None:
                    needed += _to_milli(item.credits, "credits")
            available = s._balance_milli(conn, account_id)
            if available < needed:
                raise _insufficient_credits(needed, available)
            batch_id = _new_id()
            conn.execute(
                insert(batches).values(
                    id=batch_id,
                    account_id=account_id,
                    status=BATCH_RUNNING,
                    operation=operation,
                    profile=profile,
                    items_total=len(items),
                    credits_milli=needed,
                    created_at=now,
                    webhook_url=webhook_url,
                    webhook_attempts=0,
                )
            )
            rows = []
            queued = False
            for index, item in enumerate(items):
                replay = replays.get(index)
                job_id = (
                    replay.id
                    if replay is not None
                    else self._insert_job(conn, account_id, item, now)
                )
                queued = queued or replay is None
                rows.append(
                    {
                        "batch_id": batch_id,
                        "idx": index,
                        "sku": item.sku,
                        "variant": item.variant,
                        "job_id": job_id,
                        "replayed": int(replay is not None),
                    }
                )
            conn.execute(insert(batch_items), rows)
            if queued:
                s._notify(conn)
            return self._load_batch(conn, batch_id, account_id), set(replays)

    def _insert_job(
        self, conn: Connection, account_id: str, item: BatchItemSpec, now: datetime
    ) -> str:
        """`JobStore._submit`'s writes for one new job (the caller holds the account lock)."""
        s = self.store
        milli = _to_milli(item.credits, "credits")
        job_id = _new_id()
        values: dict[str, Any] = {
            "id": job_id,
            "account_id": account_id,
            "operation": item.operation,
            "params": dict(item.params),
            "inputs": dict(item.inputs),
            "pipeline": list(item.pipeline),
            "estimated_seconds": item.estimated_seconds,
            "idempotency_key": item.idempotency_key,
            "request_fingerprint": item.request_fingerprint,
            "webhook_url": None,
            "max_attempts": item.max_attempts,
            "status": STATUS_QUEUED,
            "credits_milli": milli,
            "engines": {},
            "created_at": now,
            "attempts": 0,
            "attempt_errors": [],
            "run_after": now,
        }
        if item.blocked_reason is not None:
            values.update(
                status=STATUS_BLOCKED,
                credits_milli=0,
                error_code="content_blocked",
                error_message=item.blocked_reason,
                completed_at=now,
            )
        conn.execute(_INSERT_JOB, values).one()
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
        conn.execute(
            insert(idempotency_keys).values(
                account_id=account_id,
                key=item.idempotency_key,
                job_id=job_id,
                request_fingerprint=item.request_fingerprint,
                created_at=now,
                expires_at=now + s._idempotency_ttl,
            )
        )
        if values["status"] == STATUS_QUEUED:
            s._event(conn, job_id, STATUS_QUEUED, now, attempt=0)
        else:
            s._event(conn, job_id, STATUS_BLOCKED, now, attempt=0, detail="content_blocked")
        return job_id

    @_retry_once
    def get_batch(
        self, account_id: str, batch_id: str, *, limit: int = 0, cursor: str | None = None
    ) -> tuple[BatchRecord, list[BatchItemRecord], str | None]:
        """The batch (settled first if every item is terminal), one page of
        items by index and the next page's cursor (None at the end)."""
        if not 0 <= limit <= MAX_BATCH_ITEMS:
            raise InvalidParameter("limit", f"limit must be between 0 and {MAX_BATCH_ITEMS}.")
        start = _item_cursor(cursor)
        self.settle(batch_id)
        with self.store._tx(write=False) as conn:
            batch = self._load_batch(conn, batch_id, account_id)
            if limit == 0:
                return batch, [], None
            rows = conn.execute(
                select(batch_items, jobs)
                .select_from(batch_items.outerjoin(jobs, jobs.c.id == batch_items.c.job_id))
                .where(batch_items.c.batch_id == batch_id, batch_items.c.idx >= start)
                .order_by(batch_items.c.idx)
                .limit(limit + 1)
            ).all()
        items = [
            BatchItemRecord(
                index=r.idx,
                sku=r.sku,
                variant=r.variant,
                job=_job_record(r) if r.status is not None else None,
                replayed=bool(r.replayed),
            )
            for r in rows[:limit]
        ]
        next_cursor = str(rows[limit].idx) if len(rows) > limit else None
        return batch, items, next_cursor

    @_retry_once
    def list_batches(
        self, account_id: str, *, limit: int = 20, cursor: str | None = None
    ) -> tuple[list[BatchRecord], str | None]:
        """The account's batches, newest first."""
        if not 1 <= limit <= LIST_LIMIT_MAX:
            raise InvalidParameter("limit", f"limit must be between 1 and {LIST_LIMIT_MAX}.")
        query = select(batches.c.id).where(batches.c.account_id == account_id)
        if cursor:
            created_at, last_id = _decode_cursor(cursor)
            query = query.where(
                or_(
                    batches.c.created_at < created_at,
                    and_(batches.c.created_at == created_at, batches.c.id < last_id),
                )
            )
        query = query.order_by(batches.c.created_at.desc(), batches.c.id.desc()).limit(limit + 1)
        with self.store._tx(write=False) as conn:
            ids = list(conn.execute(query).scalars())
            records = [self._load_batch(conn, batch_id, account_id) for batch_id in ids[:limit]]
        if len(ids) <= limit:
            return records, None
        return records, _encode_cursor(records[-1].created_at, records[-1].id)

    def cancel_batch(self, account_id: str, batch_id: str) -> BatchRecord:
        """Cancel and refund every item still queued; processing items finish.
        A batch whose items have all ended is settled first and stays as it ended."""
        self.settle(batch_id)
        with self.store._tx(write=False) as conn:
            self._load_batch(conn, batch_id, account_id)
            queued = list(
                conn.execute(
                    select(jobs.c.id)
                    .select_from(batch_items.join(jobs, jobs.c.id == batch_items.c.job_id))
                    .where(batch_items.c.batch_id == batch_id, jobs.c.status == STATUS_QUEUED)
                ).scalars()
            )
        self._mark_canceled(batch_id)
        for job_id in queued:
            try:
                self.store.cancel(job_id, account_id)
            except Conflict:
                pass  # a worker claimed it meanwhile: it runs to its end
        self.settle(batch_id)
        with self.store._tx(write=False) as conn:
            return self._load_batch(conn, batch_id, account_id)

    @_retry_once
    def _mark_canceled(self, batch_id: str) -> None:
        with self.store._tx() as conn:
            conn.execute(
                update(batches)
                .where(
                    batches.c.id == batch_id,
                    batches.c.status == BATCH_RUNNING,
                    batches.c.canceled_at.is_(None),
                )
                .values(canceled_at=self.store.now())
            )

    # -- settling and the batch webhook ---------------------------------------------

    @_retry_once
    def settle(self, batch_id: str) -> bool:
        """Finish the batch if it runs and every item is terminal; True if this call did.

        A terminal job never changes again and a batch never gains items, so
        once the read finds no live item the conditional UPDATE is safe."""
        s = self.store
        with s._tx(write=False) as conn:
            row = conn.execute(
                select(batches.c.status, batches.c.canceled_at, batches.c.webhook_url).where(
                    batches.c.id == batch_id
                )
            ).first()
            if row is None or row.status != BATCH_RUNNING:
                return False
            live = conn.execute(
                select(func.count())
                .select_from(batch_items.join(jobs, jobs.c.id == batch_items.c.job_id))
                .where(
                    batch_items.c.batch_id == batch_id,
                    jobs.c.status.not_in(sorted(TERMINAL_STATUSES)),
                )
            ).scalar_one()
        if live:
            return False
        with s._tx() as conn:
            now = s.now()
            canceled = conn.execute(
                select(batches.c.canceled_at).where(batches.c.id == batch_id)
            ).scalar()
            values: dict[str, Any] = {
                "status": BATCH_CANCELED if canceled is not None else BATCH_COMPLETED,
                "finished_at": now,
            }
            if row.webhook_url:
                values.update(
                    webhook_status=WEBHOOK_PENDING,
                    webhook_next_attempt_at=now,
                    webhook_give_up_at=now + s._webhook_max_age,
                )
            changed = conn.execute(
                update(batches)
                .where(batches.c.id == batch_id, batches.c.status == BATCH_RUNNING)
                .values(**values)
            ).rowcount
            return bool(changed == 1)

    @_retry_once
    def settle_running(self) -> int:
        """Settle running batches whose items have all ended (up to SETTLE_SCAN
        per call, oldest first); how many this call settled."""
        live = (
            select(batch_items.c.idx)
            .select_from(batch_items.join(jobs, jobs.c.id == batch_items.c.job_id))
            .where(
                batch_items.c.batch_id == batches.c.id,
                jobs.c.status.not_in(sorted(TERMINAL_STATUSES)),
            )
            .exists()
        )
        with self.store._tx(write=False) as conn:
            ids = list(
                conn.execute(
                    select(batches.c.id)
                    .where(batches.c.status == BATCH_RUNNING, ~live)
                    .order_by(batches.c.created_at)
                    .limit(SETTLE_SCAN)
                ).scalars()
            )
        return sum(self.settle(batch_id) for batch_id in ids)

    @_retry_once
    def claim_batch_webhook(
        self, dispatcher_id: str, lease_seconds: float
    ) -> BatchWebhookTask | None:
        """Lease the most overdue pending batch delivery, or None (as claim_webhook)."""
        s = self.store
        with s._tx() as conn:
            now = s.now()
            for _ in range(SETTLE_SCAN):
                row = conn.execute(
                    select(batches)
                    .where(
                        batches.c.webhook_status == WEBHOOK_PENDING,
                        batches.c.webhook_next_attempt_at <= now,
                        or_(
                            batches.c.webhook_lease_expires_at.is_(None),
                            batches.c.webhook_lease_expires_at <= now,
                        ),
                    )
                    .order_by(batches.c.webhook_next_attempt_at, batches.c.id)
                    .limit(1)
                    .with_for_update(skip_locked=True)
                ).first()
                if row is None:
                    return None
                if now >= row.webhook_give_up_at:
                    conn.execute(
                        update(batches)
                        .where(batches.c.id == row.id)
                        .values(
                            webhook_status=WEBHOOK_FAILED,
                            webhook_next_attempt_at=None,
                            webhook_lease_owner=None,
                            webhook_lease_expires_at=None,
                        )
                    )
                    continue
                attempt = row.webhook_attempts + 1
                conn.execute(
                    update(batches)
                    .where(
                        batches.c.id == row.id, batches.c.webhook_attempts == row.webhook_attempts
                    )
                    .values(
                        webhook_attempts=attempt,
                        webhook_lease_owner=dispatcher_id,
                        webhook_lease_expires_at=now + timedelta(seconds=lease_seconds),
                    )
                )
                secret = s._load_account(conn, row.account_id).webhook_secret
                batch = self._load_batch(conn, row.id, row.account_id)
                return BatchWebhookTask(batch, row.webhook_url, attempt, secret)
            return None

    @_retry_once
    def record_batch_webhook(
        self,
        batch_id: str,
        dispatcher_id: str,
        attempt: int,
        *,
        status_code: int | None,
        error: str | None,
        delivered: bool,
        retry_in_seconds: float | None,
    ) -> str:
        """Record a claimed attempt's outcome; the delivery's status after it."""
        s = self.store
        with s._tx() as conn:
            now = s.now()
            row = conn.execute(
                select(batches).where(batches.c.id == batch_id).with_for_update()
            ).first()
            if row is None:
                raise NotFound(f"No batch {batch_id!r}.")
            if row.webhook_lease_owner != dispatcher_id or row.webhook_attempts != attempt:
                return str(row.webhook_status)
            status, next_at = (WEBHOOK_DELIVERED if delivered else WEBHOOK_FAILED), None
            if not delivered and retry_in_seconds is not None:
                due = now + timedelta(seconds=retry_in_seconds)
                if due < row.webhook_give_up_at:
                    status, next_at = WEBHOOK_PENDING, due
            conn.execute(
                update(batches)
                .where(batches.c.id == batch_id)
                .values(
                    webhook_status=status,
                    webhook_next_attempt_at=next_at,
                    webhook_lease_owner=None,
                    webhook_lease_expires_at=None,
                    webhook_last_status_code=status_code,
                    webhook_last_error=error,
                )
            )
            return status

    @_retry_once
    def seconds_until_batch_webhook_due(self) -> float | None:
        with self.store._tx(write=False) as conn:
            soonest = conn.execute(
                select(func.min(batches.c.webhook_next_attempt_at)).where(
                    batches.c.webhook_status == WEBHOOK_PENDING
                )
            ).scalar_one()
        if soonest is None:
            return None
        return max(0.0, (_as_utc(soonest) - self.store.now()).total_seconds())

    # -- internals -------------------------------------------------------------------

    def _load_batch(self, conn: Connection, batch_id: str, account_id: str) -> BatchRecord:
        row = conn.execute(
            select(batches).where(batches.c.id == batch_id, batches.c.account_id == account_id)
        ).first()
        if row is None:
            raise NotFound(
                "No such batch.", guidance="GET /v1/batches lists this account's batches."
            )
        counts = dict.fromkeys(COUNTED_STATUSES, 0)
        for status, n in conn.execute(
            select(jobs.c.status, func.count())
            .select_from(batch_items.join(jobs, jobs.c.id == batch_items.c.job_id))
            .where(batch_items.c.batch_id == batch_id)
            .group_by(jobs.c.status)
        ):
            counts[status] = int(n)
        return _batch_record(row, counts)


def _item_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    if not cursor.isdigit() or len(cursor) > 4:
        raise InvalidParameter("cursor", "The cursor is not one this API issued.")
    return int(cursor)


def _profile_record(row: Row[Any]) -> ProfileRecord:
    return ProfileRecord(
        account_id=row.account_id,
        name=row.name,
        version=row.version,
        operation=row.operation,
        body=dict(row.body),
        created_at=row.created_at,
    )


def _batch_record(row: Row[Any], counts: dict[str, int]) -> BatchRecord:
    return BatchRecord(
        id=row.id,
        account_id=row.account_id,
        status=row.status,
        operation=row.operation,
        profile=row.profile,
        items_total=row.items_total,
        credits=_credits(row.credits_milli),
        created_at=row.created_at,
        finished_at=row.finished_at,
        canceled_at=row.canceled_at,
        webhook_url=row.webhook_url,
        webhook_status=row.webhook_status,
        webhook_attempts=row.webhook_attempts,
        webhook_last_status_code=row.webhook_last_status_code,
        webhook_last_error=row.webhook_last_error,
        counts=counts,
    )
