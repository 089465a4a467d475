"""Job events, the webhook outbox and delivery log, retention markers on jobs;
ledger rows no longer reference job rows by foreign key.

Upgrades a 0001 database in place: existing rows are kept and new columns
start NULL (nothing purged yet). No webhook was ever sent before this
revision, so jobs with a webhook_url that ended within the last 24 h are put
in the outbox now; older ones are past the delivery window and get none.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

from services.jobs.db import UTCDateTime

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("inputs_purged_at", UTCDateTime(), nullable=True))
    op.add_column("jobs", sa.Column("output_purged_at", UTCDateTime(), nullable=True))
    op.create_index("ix_jobs_inputs_purge", "jobs", ["inputs_purged_at", "completed_at"])
    op.create_index("ix_jobs_output_purge", "jobs", ["output_purged_at", "output_expires_at"])
    op.create_index("ix_jobs_completed_at", "jobs", ["completed_at"])
    op.create_index("ix_jobs_output_key", "jobs", ["output_key"])
    # The claim walks queued jobs in (run_after, id) order straight off the index.
    op.drop_index("ix_jobs_status_run_after", table_name="jobs")
    op.create_index("ix_jobs_status_run_after", "jobs", ["status", "run_after", "id"])

    # SQLite cannot drop a constraint in place: batch mode rebuilds the table
    # (copying its rows); PostgreSQL gets a plain ALTER TABLE.
    with op.batch_alter_table("ledger") as batch:
        batch.drop_constraint("fk_ledger_job_id_jobs", type_="foreignkey")

    op.create_table(
        "job_events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("job_id", sa.String(length=32), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(length=128), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_job_events_job_id_jobs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_events")),
    )
    op.create_index(op.f("ix_job_events_job_id"), "job_events", ["job_id"])

    op.create_table(
        "webhooks",
        sa.Column("job_id", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.String(length=32), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("give_up_at", UTCDateTime(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=True),
        sa.Column("lease_owner", sa.String(length=128), nullable=True),
        sa.Column("lease_expires_at", UTCDateTime(), nullable=True),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'delivered', 'failed')",
            name=op.f("ck_webhooks_status_known"),
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_webhooks_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_webhooks_job_id_jobs")),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_webhooks")),
    )
    op.create_index("ix_webhooks_status_next", "webhooks", ["status", "next_attempt_at"])
    _backfill_outbox()

    op.create_table(
        "webhook_deliveries",
        sa.Column("job_id", sa.String(length=32), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("dispatcher", sa.String(length=128), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"], ["webhooks.job_id"], name=op.f("fk_webhook_deliveries_job_id_webhooks")
        ),
        sa.PrimaryKeyConstraint("job_id", "attempt", name=op.f("pk_webhook_deliveries")),
    )


def _backfill_outbox() -> None:
    now = datetime.now(UTC)
    window = timedelta(hours=24)
    jobs = sa.table(
        "jobs",
        sa.column("id", sa.String()),
        sa.column("account_id", sa.String()),
        sa.column("webhook_url", sa.Text()),
        sa.column("status", sa.String()),
        sa.column("completed_at", UTCDateTime()),
    )
    ended = op.get_bind().execute(
        sa.select(jobs.c.id, jobs.c.account_id, jobs.c.webhook_url, jobs.c.completed_at).where(
            jobs.c.webhook_url.is_not(None),
            jobs.c.webhook_url != "",
            jobs.c.status.in_(("completed", "failed", "blocked", "canceled")),
            jobs.c.completed_at > now - window,
        )
    )
    rows = [
        {
            "job_id": r.id,
            "account_id": r.account_id,
            "url": r.webhook_url,
            "status": "pending",
            "attempts": 0,
            "created_at": r.completed_at,
            "give_up_at": r.completed_at + window,
            "next_attempt_at": now,
        }
        for r in ended
    ]
    if rows:
        outbox = sa.table(
            "webhooks",
            sa.column("job_id", sa.String()),
            sa.column("account_id", sa.String()),
            sa.column("url", sa.Text()),
            sa.column("status", sa.String()),
            sa.column("attempts", sa.Integer()),
            sa.column("created_at", UTCDateTime()),
            sa.column("give_up_at", UTCDateTime()),
            sa.column("next_attempt_at", UTCDateTime()),
        )
        op.get_bind().execute(sa.insert(outbox), rows)


def downgrade() -> None:
    op.drop_table("webhook_deliveries")
    op.drop_table("webhooks")
    op.drop_index(op.f("ix_job_events_job_id"), table_name="job_events")
    op.drop_table("job_events")
    # The foreign key can only come back while every ledger row's job exists;
    # ledger rows are never deleted to make it fit.
    orphans = (
        op.get_bind()
        .execute(
            sa.text(
                "SELECT count(*) FROM ledger WHERE job_id IS NOT NULL "
                "AND job_id NOT IN (SELECT id FROM jobs)"
            )
        )
        .scalar_one()
    )
    if orphans:
        raise RuntimeError(
            f"cannot downgrade: {orphans} ledger rows name jobs that retention deleted"
        )
    with op.batch_alter_table("ledger") as batch:
        batch.create_foreign_key("fk_ledger_job_id_jobs", "jobs", ["job_id"], ["id"])
    op.drop_index("ix_jobs_status_run_after", table_name="jobs")
    op.create_index("ix_jobs_status_run_after", "jobs", ["status", "run_after"])
    op.drop_index("ix_jobs_output_key", table_name="jobs")
    op.drop_index("ix_jobs_completed_at", table_name="jobs")
    op.drop_index("ix_jobs_output_purge", table_name="jobs")
    op.drop_index("ix_jobs_inputs_purge", table_name="jobs")
    # Not batch mode: rebuilding `jobs` would trip the foreign keys that point at it.
    op.drop_column("jobs", "output_purged_at")
    op.drop_column("jobs", "inputs_purged_at")
