"""Image QA on jobs: a nullable JSON column `qa` with the worker's grading of the
output (scores, needs_review, reasons, compliance). Existing rows keep NULL: they
were completed before QA ran, and their job bodies show no `qa`.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("qa", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("jobs", "qa")
