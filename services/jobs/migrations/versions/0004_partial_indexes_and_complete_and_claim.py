"""Partial indexes on jobs; a worker's completion and its next claim as one
PostgreSQL function; an idle worker's look-ahead as another.

- Every index of `jobs` except the primary key and the per-account listing
  now covers only the rows its queries can ask for: the queue only queued
  jobs, the lease indexes only processing jobs, the retention indexes only
  jobs with something left to purge. A job used to add an entry to all nine
  indexes at each of its three writes (submit, claim, completion: 27 index
  inserts and their WAL); now 12. Each query that uses one of these indexes
  repeats the index's condition in its WHERE clause, which is what lets
  PostgreSQL and SQLite choose a partial index.
- PostgreSQL only: `lightbox_complete_and_claim` runs lightbox_complete and
  then lightbox_claim in one statement, with a durable commit. It replaces
  the three-statement pipeline the store used (completion, claim, a
  set_config to make the commit durable): one message each way instead of
  several wake-ups of both processes. A completion refused because the
  lease was lost raises LB410 and nothing is claimed.
- PostgreSQL only: `lightbox_next_due`, what an idle worker asks after an
  empty claim (is anything claimable, when does the next retry or lease
  expiry fall due), in one statement instead of a transaction of four.

Upgrades in place. The indexes are rebuilt under a plain CREATE INDEX, which
blocks writes to `jobs` while it runs: 2.8 s for a million jobs on the 2-core
development machine (PostgreSQL; the table with its indexes went from 859 MB
to 647 MB).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# name -> (columns, condition); the same as models.py declares.
PARTIAL_INDEXES: dict[str, tuple[list[str], str]] = {
    "ix_jobs_queue": (["run_after", "id"], "status = 'queued'"),
    "ix_jobs_leases": (["lease_expires_at", "id"], "status = 'processing'"),
    "ix_jobs_running": (["account_id", "lease_expires_at"], "status = 'processing'"),
    "ix_jobs_inputs_purge": (
        ["completed_at"],
        "inputs_purged_at IS NULL AND completed_at IS NOT NULL",
    ),
    "ix_jobs_output_purge": (
        ["output_expires_at"],
        "output_purged_at IS NULL AND output_key IS NOT NULL",
    ),
    "ix_jobs_purged_completed": (["completed_at"], "inputs_purged_at IS NOT NULL"),
    "ix_jobs_output_key": (["output_key"], "output_key IS NOT NULL"),
}

# What 0003 left, for the downgrade.
FULL_INDEXES: dict[str, list[str]] = {
    "ix_jobs_account_status": ["account_id", "status"],
    "ix_jobs_status_run_after": ["status", "run_after", "id"],
    "ix_jobs_status_lease": ["status", "lease_expires_at"],
    "ix_jobs_inputs_purge": ["inputs_purged_at", "completed_at"],
    "ix_jobs_output_purge": ["output_purged_at", "output_expires_at"],
    "ix_jobs_completed_at": ["completed_at"],
    "ix_jobs_output_key": ["output_key"],
}

_COMPLETE_AND_CLAIM = """
CREATE FUNCTION lightbox_complete_and_claim(
    p_job text, p_worker text, p_now timestamptz, p_key text, p_output_expires timestamptz,
    p_width integer, p_height integer, p_format text, p_ms bigint, p_engines json,
    p_pipeline json, p_give_up timestamptz, p_lease_expires timestamptz, p_candidates integer
) RETURNS SETOF jobs LANGUAGE plpgsql AS $$
BEGIN
    IF NOT lightbox_complete(p_job, p_worker, p_now, p_key, p_output_expires, p_width,
                             p_height, p_format, p_ms, p_engines, p_pipeline, p_give_up) THEN
        RAISE EXCEPTION 'lease on % lost', p_job USING ERRCODE = 'LB410';
    END IF;
    RETURN QUERY SELECT * FROM lightbox_claim(p_worker, p_now, p_lease_expires,
                                              p_candidates, p_give_up);
    -- lightbox_claim asks for an asynchronous commit; this one carries an outcome.
    PERFORM set_config('synchronous_commit', 'on', true);
END $$
"""

# JobStore.wait_for_work's look-ahead after an empty claim: whether a claim
# would find a job now (the claim's own candidate queries), and when the next
# retry or lease expiry falls due. It reads without locking: a probe that
# locked its row (as 0003's Python probes did, FOR UPDATE SKIP LOCKED) made a
# real claim running at that moment skip the job and wait for the next
# notification, which cost claim latency a submit interval (~40 ms in the
# benchmark). A row another claim is taking counts as claimable here; the
# waiter then looks again shortly (store.CLAIMABLE_RECHECK_SECONDS), not at once.
_NEXT_DUE = """
CREATE FUNCTION lightbox_next_due(
    p_now timestamptz, OUT claimable boolean, OUT next_due timestamptz
) LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM jobs
    WHERE status = 'processing' AND lease_expires_at <= p_now
    ORDER BY lease_expires_at, id LIMIT 1;
    claimable := FOUND;
    IF NOT claimable THEN
        PERFORM 1 FROM jobs j
        WHERE j.status = 'queued' AND j.run_after <= p_now
          AND (SELECT count(*) FROM jobs running
               WHERE running.account_id = j.account_id
                 AND running.status = 'processing'
                 AND running.lease_expires_at > p_now)
              < (SELECT a.max_concurrent_jobs FROM accounts a WHERE a.id = j.account_id)
        ORDER BY j.run_after, j.id LIMIT 1;
        claimable := FOUND;
    END IF;
    next_due := least(
        (SELECT min(run_after) FROM jobs WHERE status = 'queued' AND run_after > p_now),
        (SELECT min(lease_expires_at) FROM jobs
         WHERE status = 'processing' AND lease_expires_at > p_now));
END $$
"""

_DROPS = (
    "DROP FUNCTION lightbox_next_due(timestamptz)",
    "DROP FUNCTION lightbox_complete_and_claim(text, text, timestamptz, text, timestamptz, "
    "integer, integer, text, bigint, json, json, timestamptz, timestamptz, integer)",
)


def upgrade() -> None:
    for name in FULL_INDEXES:
        op.drop_index(name, table_name="jobs")
    for name, (columns, condition) in PARTIAL_INDEXES.items():
        where = sa.text(condition)
        op.create_index(name, "jobs", columns, postgresql_where=where, sqlite_where=where)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_COMPLETE_AND_CLAIM)
        op.execute(_NEXT_DUE)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in _DROPS:
            op.execute(statement)
    for name in PARTIAL_INDEXES:
        op.drop_index(name, table_name="jobs")
    for name, columns in FULL_INDEXES.items():
        op.create_index(name, "jobs", columns)
