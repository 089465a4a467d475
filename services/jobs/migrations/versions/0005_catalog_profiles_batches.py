"""Catalogs: generation profiles (versioned, per account), batches of jobs with
their one webhook, and the batch items.

Adds tables only; nothing existing changes.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from services.jobs.db import UTCDateTime

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _where(condition: str) -> dict[str, sa.TextClause]:
    return {"postgresql_where": sa.text(condition), "sqlite_where": sa.text(condition)}


def upgrade() -> None:
    op.create_table(
        "profiles",
        sa.Column("account_id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("operation", sa.String(64), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "name", "version", name="pk_profiles"),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_profiles_account_id_accounts"
        ),
        sa.CheckConstraint("version >= 1", name="ck_profiles_version_positive"),
    )
    op.create_table(
        "batches",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("account_id", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("operation", sa.String(64), nullable=False),
        sa.Column("profile", sa.String(80), nullable=True),
        sa.Column("items_total", sa.Integer(), nullable=False),
        sa.Column("credits_milli", sa.BigInteger(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("canceled_at", UTCDateTime(), nullable=True),
        sa.Column("webhook_url", sa.Text(), nullable=True),
        sa.Column("webhook_status", sa.String(16), nullable=True),
        sa.Column("webhook_attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("webhook_next_attempt_at", UTCDateTime(), nullable=True),
        sa.Column("webhook_give_up_at", UTCDateTime(), nullable=True),
        sa.Column("webhook_lease_owner", sa.String(128), nullable=True),
        sa.Column("webhook_lease_expires_at", UTCDateTime(), nullable=True),
        sa.Column("webhook_last_status_code", sa.Integer(), nullable=True),
        sa.Column("webhook_last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_batches"),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_batches_account_id_accounts"
        ),
        sa.CheckConstraint(
            "status IN ('running', 'completed', 'canceled')", name="ck_batches_status_known"
        ),
    )
    op.create_index("ix_batches_account_created", "batches", ["account_id", "created_at", "id"])
    op.create_index("ix_batches_running", "batches", ["created_at"], **_where("status = 'running'"))
    op.create_index(
        "ix_batches_webhook_due",
        "batches",
        ["webhook_next_attempt_at"],
        **_where("webhook_status = 'pending'"),
    )
    op.create_table(
        "batch_items",
        sa.Column("batch_id", sa.String(32), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("sku", sa.String(128), nullable=False),
        sa.Column("variant", sa.String(64), nullable=False),
        sa.Column("job_id", sa.String(32), nullable=False),
        sa.Column("replayed", sa.Integer(), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("batch_id", "idx", name="pk_batch_items"),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["batches.id"], name="fk_batch_items_batch_id_batches"
        ),
    )


def downgrade() -> None:
    op.drop_table("batch_items")
    op.drop_index("ix_batches_webhook_due", table_name="batches")
    op.drop_index("ix_batches_running", table_name="batches")
    op.drop_index("ix_batches_account_created", table_name="batches")
    op.drop_table("batches")
    op.drop_table("profiles")
