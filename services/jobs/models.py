"""The jobs database schema: accounts, API keys, the credit ledger, jobs and
idempotency keys.

These tables are the target the Alembic migrations must reach; a test compares
them with the migrated database. Change both together: add a migration under
`migrations/versions/` for every change here.

Credits are stored as integer milli-credits so that a balance, the sum of the
ledger, is exact; the store converts to and from floats at its boundary.

Revision 0002 adds the job event log, the webhook outbox and its delivery log,
and the retention markers on jobs; it also lets ledger rows outlive the job
rows they name (retention deletes old jobs, never ledger rows).

Revision 0003 adds accounts.balance_milli, kept by ledger triggers that also
refuse updates and deletes of ledger rows, and (PostgreSQL only) the queue's
hot path as SQL functions; neither triggers nor functions are described here.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from services.jobs.db import UTCDateTime

# Stable constraint names, so migrations can refer to them on both backends.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

JOB_STATUSES = ("queued", "processing", "completed", "failed", "blocked", "canceled")
LEDGER_REASONS = ("grant", "charge", "refund", "adjustment")
WEBHOOK_STATUSES = ("pending", "delivered", "failed")

# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
_BigId = BigInteger().with_variant(Integer(), "sqlite")

accounts = Table(
    "accounts",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("plan", String(64), nullable=False),
    Column("rate_limit_per_minute", Integer, nullable=False),
    # Empty list: every operation is allowed.
    Column("allowed_operations", JSON, nullable=False),
    # Kept in the clear: it signs outgoing webhooks, so it must be readable.
    Column("webhook_secret", String(128), nullable=False),
    Column("max_concurrent_jobs", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    # The sum of the account's ledger rows (0003), kept by a trigger on ledger
    # inserts in the same transaction; `JobStore.verify_ledger` re-derives it.
    Column("balance_milli", BigInteger, nullable=False, server_default="0"),
    CheckConstraint("max_concurrent_jobs >= 1", name="max_concurrent_jobs_positive"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("account_id", String(32), ForeignKey("accounts.id"), nullable=False, index=True),
    # The visible start of the key ("lb_live_ab12cd34"): finds the row to compare against.
    Column("prefix", String(32), nullable=False, unique=True),
    # sha256 hex of the whole key; the plaintext is never stored.
    Column("key_hash", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime, nullable=True),
)


def _partial_index(name: str, columns: list[str], condition: str) -> Index:
    """An index over the rows that meet `condition` (SQL), on both backends."""
    where = text(condition)
    return Index(name, *columns, postgresql_where=where, sqlite_where=where)


jobs = Table(
    "jobs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("account_id", String(32), ForeignKey("accounts.id"), nullable=False),
    Column("operation", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("params", JSON, nullable=False),
    Column("inputs", JSON, nullable=False),
    # What was debited at submit (0 for a job blocked at submit).
    Column("credits_milli", BigInteger, nullable=False),
    Column("pipeline", JSON, nullable=False),
    Column("engines", JSON, nullable=False),
    Column("estimated_seconds", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime, nullable=True),
    Column("completed_at", UTCDateTime, nullable=True),
    Column("output_key", String(512), nullable=True),
    Column("output_expires_at", UTCDateTime, nullable=True),
    Column("width", Integer, nullable=True),
    Column("height", Integer, nullable=True),
    Column("format", String(16), nullable=True),
    Column("processing_ms", BigInteger, nullable=True),
    Column("error_code", String(64), nullable=True),
    Column("error_message", Text, nullable=True),
    Column("attempts", Integer, nullable=False),
    Column("max_attempts", Integer, nullable=False),
    Column("stage", String(64), nullable=True),
    Column("webhook_url", Text, nullable=True),
    Column("idempotency_key", String(255), nullable=True),
    Column("request_fingerprint", String(128), nullable=False),
    Column("attempt_errors", JSON, nullable=False),
    # The queue: a queued job runs once run_after has passed; a processing job
    # belongs to lease_owner until lease_expires_at, then any worker may take it.
    Column("run_after", UTCDateTime, nullable=False),
    Column("lease_owner", String(128), nullable=True),
    Column("lease_expires_at", UTCDateTime, nullable=True),
    Column("refunded_at", UTCDateTime, nullable=True),
    # Retention (0002): when the input blobs and the output blob were deleted.
    Column("inputs_purged_at", UTCDateTime, nullable=True),
    Column("output_purged_at", UTCDateTime, nullable=True),
    # Image QA of the output (migration 0006): written by the worker just before
    # it completes the job; shown only once the job is completed.
    Column("qa", JSON, nullable=True),
    CheckConstraint(
        "status IN (" + ", ".join(f"'{s}'" for s in JOB_STATUSES) + ")", name="status_known"
    ),
    CheckConstraint("attempts >= 0 AND max_attempts >= 1", name="attempts_sane"),
    # An account's jobs, newest first (listing and usage).
    Index("ix_jobs_account_created", "account_id", "created_at", "id"),
    # The rest are partial (0004): a row is in an index only while its queries
    # can want it, so a job's three writes touch 12 index entries, not 27. A
    # query uses one of them only if its WHERE clause states the index's
    # condition, with the status as a literal (see store/plumbing/sql.py, _status_is).
    # The claim's walk over queued jobs, in (run_after, id) order.
    _partial_index("ix_jobs_queue", ["run_after", "id"], "status = 'queued'"),
    # Expired leases, oldest first; and an account's live leases (its cap).
    _partial_index("ix_jobs_leases", ["lease_expires_at", "id"], "status = 'processing'"),
    _partial_index("ix_jobs_running", ["account_id", "lease_expires_at"], "status = 'processing'"),
    # Retention scans: inputs by completion, outputs by expiry, old rows whose
    # inputs are gone, and the orphan sweep's "is this blob anyone's output".
    _partial_index(
        "ix_jobs_inputs_purge",
        ["completed_at"],
        "inputs_purged_at IS NULL AND completed_at IS NOT NULL",
    ),
    _partial_index(
        "ix_jobs_output_purge",
        ["output_expires_at"],
        "output_purged_at IS NULL AND output_key IS NOT NULL",
    ),
    _partial_index("ix_jobs_purged_completed", ["completed_at"], "inputs_purged_at IS NOT NULL"),
    _partial_index("ix_jobs_output_key", ["output_key"], "output_key IS NOT NULL"),
)

# Append-only: a balance is always the sum of an account's rows. A job has at
# most one charge and one refund row, which is what makes a double charge or a
# double refund impossible however the calls race. `job_id` names the job but
# is no foreign key (since 0002): the accounting outlives job rows that
# retention deletes.
ledger = Table(
    "ledger",
    metadata,
    Column("id", _BigId, primary_key=True, autoincrement=True),
    Column("account_id", String(32), ForeignKey("accounts.id"), nullable=False, index=True),
    Column("job_id", String(32), nullable=True),
    Column("delta_milli", BigInteger, nullable=False),
    Column("reason", String(16), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("job_id", "reason"),
    CheckConstraint(
        "reason IN (" + ", ".join(f"'{r}'" for r in LEDGER_REASONS) + ")", name="reason_known"
    ),
    CheckConstraint(
        "(reason IN ('charge', 'refund')) = (job_id IS NOT NULL)", name="job_rows_have_job"
    ),
)

# One row per (account, key) while it is live. Kept apart from `jobs` because a
# key may be reused once it expires, which a unique index on jobs cannot express.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("account_id", String(32), ForeignKey("accounts.id"), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("job_id", String(32), ForeignKey("jobs.id"), nullable=False),
    Column("request_fingerprint", String(128), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False, index=True),
)

# Every state a job enters, in the transaction that moved it there (0002): the
# job's history for operators, and the proof that a transition happened once.
job_events = Table(
    "job_events",
    metadata,
    Column("id", _BigId, primary_key=True, autoincrement=True),
    Column("job_id", String(32), ForeignKey("jobs.id"), nullable=False, index=True),
    Column("at", UTCDateTime, nullable=False),
    # The state entered: one of JOB_STATUSES.
    Column("status", String(16), nullable=False),
    # The job's attempt counter after the transition.
    Column("attempt", Integer, nullable=False),
    # The worker that made it (claims, outcomes, lease expiries); None for API calls.
    Column("worker", String(128), nullable=True),
    # Why, when it is not obvious: an error code, "lease_expired", ...
    Column("detail", Text, nullable=True),
)

# The webhook outbox (0002): one row per job with a webhook_url that reached a
# terminal state, inserted in the same transaction as that state. Dispatchers
# claim due rows under a lease, like workers claim jobs.
webhooks = Table(
    "webhooks",
    metadata,
    Column("job_id", String(32), ForeignKey("jobs.id"), primary_key=True),
    Column("account_id", String(32), ForeignKey("accounts.id"), nullable=False),
    Column("url", Text, nullable=False),
    Column("status", String(16), nullable=False),
    # Attempts started so far (the next one is attempts + 1).
    Column("attempts", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    # No attempt starts after this (created_at + 24 h by default).
    Column("give_up_at", UTCDateTime, nullable=False),
    Column("next_attempt_at", UTCDateTime, nullable=True),
    Column("lease_owner", String(128), nullable=True),
    Column("lease_expires_at", UTCDateTime, nullable=True),
    Column("finished_at", UTCDateTime, nullable=True),
    CheckConstraint(
        "status IN (" + ", ".join(f"'{s}'" for s in WEBHOOK_STATUSES) + ")",
        name="status_known",
    ),
    Index("ix_webhooks_status_next", "status", "next_attempt_at"),
)

# One row per delivery attempt: what was sent when, and what came back.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("job_id", String(32), ForeignKey("webhooks.job_id"), primary_key=True),
    Column("attempt", Integer, primary_key=True),
    Column("dispatcher", String(128), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("duration_ms", Integer, nullable=True),
    # The receiver's HTTP status; None when there was none (see error).
    Column("status_code", Integer, nullable=True),
    Column("error", Text, nullable=True),
    # When the next attempt is due; None after the last one.
    Column("next_attempt_at", UTCDateTime, nullable=True),
)

# -- catalogs (revision 0005): profiles and batches ---------------------------------

BATCH_STATUSES = ("running", "completed", "canceled")

# Generation profiles: one row per (account, name, version); a version is never
# updated or deleted. `body` is the profile as the gateway validated it.
profiles = Table(
    "profiles",
    metadata,
    Column("account_id", String(32), ForeignKey("accounts.id"), primary_key=True),
    Column("name", String(64), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("operation", String(64), nullable=False),
    Column("body", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    CheckConstraint("version >= 1", name="version_positive"),
)

# A batch of jobs, and its one webhook (an outbox on the row: set pending in the
# transaction that finds every item terminal, claimed under a lease like a job's).
batches = Table(
    "batches",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("account_id", String(32), ForeignKey("accounts.id"), nullable=False),
    Column("status", String(16), nullable=False),
    Column("operation", String(64), nullable=False),
    Column("profile", String(80), nullable=True),
    Column("items_total", Integer, nullable=False),
    # What creating the batch charged (replayed items cost nothing).
    Column("credits_milli", BigInteger, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime, nullable=True),
    Column("canceled_at", UTCDateTime, nullable=True),
    Column("webhook_url", Text, nullable=True),
    # pending | delivered | failed; NULL until the batch has finished (or without a URL).
    Column("webhook_status", String(16), nullable=True),
    Column("webhook_attempts", Integer, nullable=False, server_default="0"),
    Column("webhook_next_attempt_at", UTCDateTime, nullable=True),
    Column("webhook_give_up_at", UTCDateTime, nullable=True),
    Column("webhook_lease_owner", String(128), nullable=True),
    Column("webhook_lease_expires_at", UTCDateTime, nullable=True),
    Column("webhook_last_status_code", Integer, nullable=True),
    Column("webhook_last_error", Text, nullable=True),
    CheckConstraint(
        "status IN (" + ", ".join(f"'{s}'" for s in BATCH_STATUSES) + ")", name="status_known"
    ),
    # An account's batches, newest first.
    Index("ix_batches_account_created", "account_id", "created_at", "id"),
    # Batches still running (the settler's scan) and due webhooks.
    _partial_index("ix_batches_running", ["created_at"], "status = 'running'"),
    _partial_index(
        "ix_batches_webhook_due", ["webhook_next_attempt_at"], "webhook_status = 'pending'"
    ),
)

# The items of a batch, in the order given. `job_id` is no foreign key: retention
# may delete old job rows, as it may for ledger rows.
batch_items = Table(
    "batch_items",
    metadata,
    Column("batch_id", String(32), ForeignKey("batches.id"), primary_key=True),
    Column("idx", Integer, primary_key=True),
    Column("sku", String(128), nullable=False),
    Column("variant", String(64), nullable=False),
    Column("job_id", String(32), nullable=False),
    # The item's idempotency key returned an earlier job (nothing charged).
    Column("replayed", Integer, nullable=False, server_default="0"),
)
