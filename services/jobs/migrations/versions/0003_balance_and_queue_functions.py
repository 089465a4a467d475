"""Running balances kept by the ledger itself; the queue's hot path as
PostgreSQL functions.

- `accounts.balance_milli`: the sum of the account's ledger rows, kept by a
  trigger on every ledger insert (both backends), so a submit reads one
  column instead of summing a ledger that grows with every job. The ledger
  stays the record: `lightbox admin verify-ledger` re-derives every balance
  from it and reports a mismatch. Triggers also refuse UPDATE and DELETE on
  ledger rows, making append-only a property of the database, not only of
  the code. (A later migration that rebuilds `ledger` with SQLite's batch
  mode must create these triggers again.)
- PostgreSQL only: `lightbox_submit`, `lightbox_claim` and `lightbox_complete`
  do in one round trip what the store did in six to eleven statements. They
  implement exactly the store's rules (see JobStore.submit/claim/complete,
  which keep the SQLite implementation in Python); the store's tests run on
  both backends. A change to either side changes both, through a new
  migration that replaces the functions.

Upgrades in place: the balance column is filled from the ledger.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The same constant as store._CLAIM_LOCK_CLASS: claims of one account serialise on
# pg_advisory_xact_lock(class, hashtext(account_id)) in Python and in SQL alike.
CLAIM_LOCK_CLASS = 0x4C42_434C

_SQLITE_TRIGGERS = (
    """
    CREATE TRIGGER ledger_balance AFTER INSERT ON ledger
    BEGIN
        UPDATE accounts SET balance_milli = balance_milli + NEW.delta_milli
        WHERE id = NEW.account_id;
    END
    """,
    """
    CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger
    BEGIN SELECT RAISE(ABORT, 'ledger rows are append-only'); END
    """,
    """
    CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger
    BEGIN SELECT RAISE(ABORT, 'ledger rows are append-only'); END
    """,
)

_POSTGRES_TRIGGERS = (
    """
    CREATE FUNCTION lightbox_ledger_balance() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE accounts SET balance_milli = balance_milli + NEW.delta_milli
        WHERE id = NEW.account_id;
        RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER ledger_balance AFTER INSERT ON ledger
    FOR EACH ROW EXECUTE FUNCTION lightbox_ledger_balance()
    """,
    """
    CREATE FUNCTION lightbox_ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'ledger rows are append-only';
    END $$
    """,
    """
    CREATE TRIGGER ledger_append_only BEFORE UPDATE OR DELETE ON ledger
    FOR EACH ROW EXECUTE FUNCTION lightbox_ledger_append_only()
    """,
)

# Errors raised by the functions, mapped back to the store's exceptions:
# LB402 insufficient credits (DETAIL: available milli-credits), LB404 no such
# account, LB409 idempotency key reused with another request (DETAIL: job id).
_POSTGRES_FUNCTIONS = (
    # Webhook outbox row for a job that just ended (once: the job id is the key).
    """
    CREATE FUNCTION lightbox_enqueue_webhook(
        p_job text, p_account text, p_url text, p_now timestamptz, p_give_up timestamptz
    ) RETURNS void LANGUAGE plpgsql AS $$
    BEGIN
        IF p_url IS NULL OR p_url = '' THEN
            RETURN;
        END IF;
        INSERT INTO webhooks (job_id, account_id, url, status, attempts, created_at,
                              give_up_at, next_attempt_at)
        VALUES (p_job, p_account, p_url, 'pending', 0, p_now, p_give_up, p_now)
        ON CONFLICT DO NOTHING;
    END $$
    """,
    # JobStore.submit: debit and insert in one transaction, idempotent per key.
    # Returns the new job, or the original one for a live key with the same
    # fingerprint (the caller tells them apart by id: it chose p_id).
    """
    CREATE FUNCTION lightbox_submit(
        p_id text, p_account text, p_operation text, p_params json, p_inputs json,
        p_pipeline json, p_estimated integer, p_key text, p_fingerprint text,
        p_webhook text, p_max_attempts integer, p_milli bigint, p_blocked text,
        p_now timestamptz, p_key_expires timestamptz, p_give_up timestamptz
    ) RETURNS SETOF jobs LANGUAGE plpgsql AS $$
    DECLARE
        available bigint;
        k idempotency_keys%ROWTYPE;
        r jobs%ROWTYPE;
    BEGIN
        SELECT balance_milli INTO available FROM accounts WHERE id = p_account
        FOR NO KEY UPDATE;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'no account %', p_account USING ERRCODE = 'LB404';
        END IF;
        IF p_key IS NOT NULL THEN
            SELECT * INTO k FROM idempotency_keys WHERE account_id = p_account AND key = p_key;
            IF FOUND THEN
                IF k.expires_at <= p_now THEN
                    DELETE FROM idempotency_keys WHERE account_id = p_account AND key = p_key;
                ELSIF k.request_fingerprint <> p_fingerprint THEN
                    RAISE EXCEPTION 'idempotency conflict'
                        USING ERRCODE = 'LB409', DETAIL = k.job_id;
                ELSE
                    RETURN QUERY SELECT * FROM jobs WHERE id = k.job_id;
                    RETURN;
                END IF;
            END IF;
        END IF;
        IF p_blocked IS NULL AND available < p_milli THEN
            RAISE EXCEPTION 'insufficient credits'
                USING ERRCODE = 'LB402', DETAIL = available::text;
        END IF;
        INSERT INTO jobs (id, account_id, operation, status, params, inputs, credits_milli,
                          pipeline, engines, estimated_seconds, created_at, attempts,
                          max_attempts, webhook_url, idempotency_key, request_fingerprint,
                          attempt_errors, run_after, error_code, error_message, completed_at)
        VALUES (p_id, p_account, p_operation,
                CASE WHEN p_blocked IS NULL THEN 'queued' ELSE 'blocked' END,
                p_params, p_inputs,
                CASE WHEN p_blocked IS NULL THEN p_milli ELSE 0 END,
                p_pipeline, '{}'::json, p_estimated, p_now, 0, p_max_attempts, p_webhook,
                p_key, p_fingerprint, '[]'::json, p_now,
                CASE WHEN p_blocked IS NULL THEN NULL ELSE 'content_blocked' END,
                p_blocked,
                CASE WHEN p_blocked IS NULL THEN NULL ELSE p_now END)
        RETURNING * INTO r;
        IF r.credits_milli <> 0 THEN
            INSERT INTO ledger (account_id, job_id, delta_milli, reason, created_at)
            VALUES (p_account, p_id, -r.credits_milli, 'charge', p_now);
        END IF;
        IF p_key IS NOT NULL THEN
            INSERT INTO idempotency_keys (account_id, key, job_id, request_fingerprint,
                                          created_at, expires_at)
            VALUES (p_account, p_key, p_id, p_fingerprint, p_now, p_key_expires);
        END IF;
        IF p_blocked IS NULL THEN
            INSERT INTO job_events (job_id, at, status, attempt) VALUES (p_id, p_now, 'queued', 0);
            PERFORM pg_notify('lightbox_jobs', '');
        ELSE
            INSERT INTO job_events (job_id, at, status, attempt, detail)
            VALUES (p_id, p_now, 'blocked', 0, 'content_blocked');
            PERFORM lightbox_enqueue_webhook(p_id, p_account, p_webhook, p_now, p_give_up);
        END IF;
        RETURN NEXT r;
    END $$
    """,
    # JobStore._finish for a lease that expired on its last attempt.
    """
    CREATE FUNCTION lightbox_fail_exhausted(
        r jobs, p_errors jsonb, p_now timestamptz, p_give_up timestamptz
    ) RETURNS void LANGUAGE plpgsql AS $$
    DECLARE
        refund_id bigint;
    BEGIN
        UPDATE jobs SET status = 'failed', error_code = 'attempts_exhausted',
               error_message = format('The job did not finish in %s attempts; '
                                      'the last worker stopped responding.', r.max_attempts),
               completed_at = p_now, lease_expires_at = NULL, stage = NULL,
               attempt_errors = p_errors::json
        WHERE id = r.id AND status = 'processing' AND attempts = r.attempts;
        IF NOT FOUND THEN
            RETURN;
        END IF;
        IF r.credits_milli <> 0 THEN
            INSERT INTO ledger (account_id, job_id, delta_milli, reason, created_at)
            VALUES (r.account_id, r.id, r.credits_milli, 'refund', p_now)
            ON CONFLICT DO NOTHING RETURNING id INTO refund_id;
            IF refund_id IS NOT NULL THEN
                UPDATE jobs SET refunded_at = p_now WHERE id = r.id;
            END IF;
        END IF;
        INSERT INTO job_events (job_id, at, status, attempt, worker, detail)
        VALUES (r.id, p_now, 'failed', r.attempts, r.lease_owner, 'attempts_exhausted');
        PERFORM lightbox_enqueue_webhook(r.id, r.account_id, r.webhook_url, p_now, p_give_up);
    END $$
    """,
    # JobStore.claim: expired leases first, then due queued jobs of accounts
    # under their cap; the cap re-checked under the account's claim lock, which
    # a passed-over account releases (the sub-block rolls back).
    f"""
    CREATE FUNCTION lightbox_claim(
        p_worker text, p_now timestamptz, p_lease_expires timestamptz,
        p_candidates integer, p_give_up timestamptz
    ) RETURNS SETOF jobs LANGUAGE plpgsql AS $$
    DECLARE
        r jobs%ROWTYPE;
        capped text[] := '{{}}';
        errors jsonb;
        expired boolean;
        ended_one boolean := false;
    BEGIN
        FOR i IN 1..p_candidates LOOP
            SELECT * INTO r FROM jobs
            WHERE status = 'processing' AND lease_expires_at <= p_now
              AND account_id <> ALL (capped)
            ORDER BY lease_expires_at, id LIMIT 1
            FOR UPDATE SKIP LOCKED;
            IF NOT FOUND THEN
                SELECT * INTO r FROM jobs j
                WHERE j.status = 'queued' AND j.run_after <= p_now
                  AND j.account_id <> ALL (capped)
                  AND (SELECT count(*) FROM jobs running
                       WHERE running.account_id = j.account_id
                         AND running.status = 'processing'
                         AND running.lease_expires_at > p_now)
                      < (SELECT a.max_concurrent_jobs FROM accounts a WHERE a.id = j.account_id)
                ORDER BY j.run_after, j.id LIMIT 1
                FOR UPDATE OF j SKIP LOCKED;
                IF NOT FOUND THEN
                    RETURN;
                END IF;
            END IF;
            expired := r.status = 'processing';
            errors := r.attempt_errors::jsonb;
            IF expired THEN
                errors := errors || jsonb_build_array(jsonb_build_object(
                    'attempt', r.attempts,
                    'code', 'lease_expired',
                    'message', format('worker %s stopped renewing its lease', r.lease_owner),
                    'at', to_char(p_now AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')));
                IF r.attempts >= r.max_attempts THEN
                    PERFORM lightbox_fail_exhausted(r, errors, p_now, p_give_up);
                    ended_one := true;
                    CONTINUE;
                END IF;
            END IF;
            BEGIN
                PERFORM pg_advisory_xact_lock({CLAIM_LOCK_CLASS}, hashtext(r.account_id));
                IF (SELECT count(*) FROM jobs
                    WHERE account_id = r.account_id AND status = 'processing'
                      AND lease_expires_at > p_now AND id <> r.id)
                   >= (SELECT max_concurrent_jobs FROM accounts WHERE id = r.account_id) THEN
                    RAISE EXCEPTION 'account at its cap' USING ERRCODE = 'LB429';
                END IF;
            EXCEPTION WHEN SQLSTATE 'LB429' THEN
                capped := capped || r.account_id;
                CONTINUE;
            END;
            UPDATE jobs SET status = 'processing', lease_owner = p_worker,
                   lease_expires_at = p_lease_expires, attempts = r.attempts + 1,
                   started_at = coalesce(r.started_at, p_now), stage = NULL,
                   attempt_errors = errors::json
            WHERE id = r.id
            RETURNING * INTO r;
            INSERT INTO job_events (job_id, at, status, attempt, worker, detail)
            VALUES (r.id, p_now, 'processing', r.attempts, p_worker,
                    CASE WHEN expired THEN 'lease_expired' END);
            IF NOT ended_one THEN
                -- A lost claim heals itself (the lease expires); see JobStore._tx.
                PERFORM set_config('synchronous_commit', 'off', true);
            END IF;
            RETURN NEXT r;
            RETURN;
        END LOOP;
    END $$
    """,
    # JobStore.complete: true if p_worker still held the lease.
    """
    CREATE FUNCTION lightbox_complete(
        p_job text, p_worker text, p_now timestamptz, p_key text, p_output_expires timestamptz,
        p_width integer, p_height integer, p_format text, p_ms bigint, p_engines json,
        p_pipeline json, p_give_up timestamptz
    ) RETURNS boolean LANGUAGE plpgsql AS $$
    DECLARE
        r record;
        cap integer;
        used bigint;
    BEGIN
        UPDATE jobs SET status = 'completed', completed_at = p_now, output_key = p_key,
               output_expires_at = p_output_expires, width = p_width, height = p_height,
               format = p_format, processing_ms = p_ms, engines = p_engines,
               pipeline = p_pipeline, error_code = NULL, error_message = NULL,
               lease_expires_at = NULL, stage = NULL
        WHERE id = p_job AND status = 'processing' AND lease_owner = p_worker
        RETURNING account_id, webhook_url, attempts INTO r;
        IF NOT FOUND THEN
            RETURN false;
        END IF;
        INSERT INTO job_events (job_id, at, status, attempt, worker)
        VALUES (p_job, p_now, 'completed', r.attempts, p_worker);
        PERFORM lightbox_enqueue_webhook(p_job, r.account_id, r.webhook_url, p_now, p_give_up);
        -- Wake a waiting worker only if this freed a slot jobs may be waiting on.
        SELECT a.max_concurrent_jobs,
               (SELECT count(*) FROM jobs WHERE account_id = r.account_id
                  AND status = 'processing' AND lease_expires_at > p_now)
        INTO cap, used FROM accounts a WHERE a.id = r.account_id;
        IF used + 1 >= cap THEN
            PERFORM pg_notify('lightbox_jobs', '');
        END IF;
        RETURN true;
    END $$
    """,
)

_POSTGRES_DROPS = (
    "DROP FUNCTION lightbox_complete(text, text, timestamptz, text, timestamptz, integer, "
    "integer, text, bigint, json, json, timestamptz)",
    "DROP FUNCTION lightbox_claim(text, timestamptz, timestamptz, integer, timestamptz)",
    "DROP FUNCTION lightbox_fail_exhausted(jobs, jsonb, timestamptz, timestamptz)",
    "DROP FUNCTION lightbox_submit(text, text, text, json, json, json, integer, text, text, "
    "text, integer, bigint, text, timestamptz, timestamptz, timestamptz)",
    "DROP FUNCTION lightbox_enqueue_webhook(text, text, text, timestamptz, timestamptz)",
    "DROP TRIGGER ledger_append_only ON ledger",
    "DROP FUNCTION lightbox_ledger_append_only()",
    "DROP TRIGGER ledger_balance ON ledger",
    "DROP FUNCTION lightbox_ledger_balance()",
)


def upgrade() -> None:
    op.add_column(
        "accounts",
        sa.Column("balance_milli", sa.BigInteger(), nullable=False, server_default="0"),
    )
    op.execute(
        "UPDATE accounts SET balance_milli = "
        "(SELECT coalesce(sum(delta_milli), 0) FROM ledger WHERE ledger.account_id = accounts.id)"
    )
    if op.get_bind().dialect.name == "postgresql":
        for statement in (*_POSTGRES_TRIGGERS, *_POSTGRES_FUNCTIONS):
            op.execute(statement)
    else:
        for statement in _SQLITE_TRIGGERS:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in _POSTGRES_DROPS:
            op.execute(statement)
    else:
        for name in ("ledger_no_delete", "ledger_no_update", "ledger_balance"):
            op.execute(f"DROP TRIGGER {name}")
    # A plain ALTER TABLE on both (SQLite >= 3.35 drops a column in place; batch
    # mode would rebuild `accounts`, which the other tables' foreign keys refuse).
    op.drop_column("accounts", "balance_milli")
