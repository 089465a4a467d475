"""The jobs service's data layer: accounts, API keys, the credit ledger, jobs
and the durable job queue, on SQLite (embedded) or PostgreSQL (production).

Where things are (each module's docstring says what it owns and must not do):

    records.py        the record dataclasses, status names, row -> record
    base.py           construction, lifecycle, job-row primitives (load, lock, event)
    accounts.py       accounts and API keys
    ledger.py         balances, grants, refunds
    submit.py         submit (SQLite body + lightbox_submit) and idempotency
    jobs.py           get, list, events, cancel
    queue/claim.py    claim (+ lightbox_claim), complete_and_claim, queue_depth
    queue/leases.py   heartbeat, QA, complete (+ lightbox_complete), fail, block
    queue/wakeups.py  wait_for_work (+ lightbox_next_due)
    queue/notifier.py the PostgreSQL LISTEN connection and its wake-ups
    webhooks.py       the webhook outbox
    retention.py      the retention service's queries
    plumbing/tx.py    transactions, single statements, retry rules
    plumbing/sql.py   SQL and row helpers shared by the above

`JobStore` (below) is those parts composed; services use only its public
methods and the names exported here. Names with a leading underscore are
private to this package (its modules share them); catalog_store.py, which
writes jobs in the store's transactions, is the one outside user.

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
(migrations 0003 and 0004), one round trip each in an implicit transaction;
the Python bodies beside each call are the SQLite implementation and the
specification those functions follow. The store's tests run every rule on
both backends.
"""

from __future__ import annotations

from services.jobs.store.base import IDEMPOTENCY_TTL, MAX_CLAIM_CANDIDATES, WEBHOOK_MAX_AGE
from services.jobs.store.jobs import LIST_LIMIT_MAX, JobsMixin
from services.jobs.store.ledger import MANUAL_LEDGER_REASONS
from services.jobs.store.queue.leases import MAX_RETRY_DELAY_SECONDS
from services.jobs.store.queue.notifier import (
    NOTIFY_CHANNEL,
    POLL_FIRST_SLEEP_SECONDS,
    POLL_MAX_SLEEP_SECONDS,
)
from services.jobs.store.queue.wakeups import CLAIMABLE_RECHECK_SECONDS, WakeupsMixin
from services.jobs.store.records import (
    MILLI_PER_CREDIT,
    STATUS_BLOCKED,
    STATUS_CANCELED,
    STATUS_COMPLETED,
    STATUS_FAILED,
    STATUS_PROCESSING,
    STATUS_QUEUED,
    TERMINAL_STATUSES,
    WEBHOOK_DELIVERED,
    WEBHOOK_FAILED,
    WEBHOOK_PENDING,
    AccountRecord,
    ApiKeyRecord,
    JobEvent,
    JobRecord,
    LedgerMismatch,
    WebhookAttempt,
    WebhookState,
    WebhookTask,
)
from services.jobs.store.retention import RetentionMixin
from services.jobs.store.submit import SubmitMixin


class JobStore(WakeupsMixin, SubmitMixin, JobsMixin, RetentionMixin):
    """Accounts, keys, the ledger, jobs, the queue and the webhook outbox over
    one database. Construct with a SQLAlchemy URL (see StoreBase.__init__),
    call `migrate()` once, `close()` at the end."""


__all__ = [
    "CLAIMABLE_RECHECK_SECONDS",
    "IDEMPOTENCY_TTL",
    "LIST_LIMIT_MAX",
    "MANUAL_LEDGER_REASONS",
    "MAX_CLAIM_CANDIDATES",
    "MAX_RETRY_DELAY_SECONDS",
    "MILLI_PER_CREDIT",
    "NOTIFY_CHANNEL",
    "POLL_FIRST_SLEEP_SECONDS",
    "POLL_MAX_SLEEP_SECONDS",
    "STATUS_BLOCKED",
    "STATUS_CANCELED",
    "STATUS_COMPLETED",
    "STATUS_FAILED",
    "STATUS_PROCESSING",
    "STATUS_QUEUED",
    "TERMINAL_STATUSES",
    "WEBHOOK_DELIVERED",
    "WEBHOOK_FAILED",
    "WEBHOOK_MAX_AGE",
    "WEBHOOK_PENDING",
    "AccountRecord",
    "ApiKeyRecord",
    "JobEvent",
    "JobRecord",
    "JobStore",
    "LedgerMismatch",
    "WebhookAttempt",
    "WebhookState",
    "WebhookTask",
]
