"""Migrations upgrade a live database in place: a database created at the first
revision, with accounts, keys, ledger rows and jobs in every state, is
upgraded to head with its data intact and keeps working."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, select, text

from services.jobs import keys as keylib
from services.jobs.migrations import alembic_config
from services.jobs.models import metadata, webhooks
from services.jobs.store import JobStore

from .test_store_postgres import OUTCOME


def _upgrade(store: JobStore, revision: str) -> None:
    config = alembic_config()
    with store.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def _job(job_id: str, status: str, now: datetime, **extra: Any) -> dict[str, Any]:
    row = {
        "id": job_id,
        "account_id": "acct",
        "operation": "product-photo",
        "status": status,
        "params": '{"preset": "marble"}',
        "inputs": '{"image": "inputs/20260101/' + job_id.ljust(22, "x") + '.png"}',
        "credits_milli": 7000,
        "pipeline": '["remove-background"]',
        "engines": "{}",
        "estimated_seconds": 3,
        "created_at": now - timedelta(days=3),
        "attempts": 0,
        "max_attempts": 3,
        "request_fingerprint": "fp",
        "attempt_errors": "[]",
        "run_after": now - timedelta(days=3),
        "webhook_url": "https://example.com/hook",
        "completed_at": None,
        "output_key": None,
        "output_expires_at": None,
        "lease_owner": None,
        "lease_expires_at": None,
    }
    row.update(extra)
    return row


def _naive_if_sqlite(store: JobStore, row: dict[str, Any]) -> dict[str, Any]:
    # Raw SQL bypasses UTCDateTime: SQLite stores naive UTC text, PostgreSQL timestamptz.
    if store.dialect != "sqlite":
        return row
    return {
        k: (v.astimezone(UTC).replace(tzinfo=None) if isinstance(v, datetime) else v)
        for k, v in row.items()
    }


def test_upgrade_from_first_revision_keeps_data_and_works(empty_db_url: str) -> None:
    store = JobStore(empty_db_url)
    try:
        _upgrade(store, "0001")
        now = datetime.now(UTC)
        generated = keylib.generate_key()
        rows = [
            _job("queued1", "queued", now),
            _job(
                "running1",
                "processing",
                now,
                attempts=1,
                lease_owner="old-worker",
                lease_expires_at=now - timedelta(seconds=5),
            ),
            _job(
                "recent1",
                "completed",
                now,
                attempts=1,
                completed_at=now - timedelta(hours=1),
                output_key="outputs/20260101/recent1xxxxxxxxxxxxxxx.jpg",
                output_expires_at=now + timedelta(hours=23),
            ),
            _job("old1", "failed", now, attempts=3, completed_at=now - timedelta(days=2)),
        ]
        with store.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO accounts (id, name, plan, rate_limit_per_minute, "
                    "allowed_operations, webhook_secret, max_concurrent_jobs, created_at) "
                    "VALUES ('acct', 'legacy', 'pro', 60, '[]', :secret, 4, :now)"
                ),
                _naive_if_sqlite(store, {"secret": "s" * 64, "now": now}),
            )
            conn.execute(
                text(
                    "INSERT INTO api_keys (id, account_id, prefix, key_hash, created_at) "
                    "VALUES ('k1', 'acct', :prefix, :hash, :now)"
                ),
                _naive_if_sqlite(
                    store, {"prefix": generated.prefix, "hash": generated.key_hash, "now": now}
                ),
            )
            for row in rows:
                columns = ", ".join(row)
                values = ", ".join(f":{k}" for k in row)
                conn.execute(
                    text(f"INSERT INTO jobs ({columns}) VALUES ({values})"),
                    _naive_if_sqlite(store, row),
                )
            conn.execute(
                text(
                    "INSERT INTO ledger (account_id, job_id, delta_milli, reason, created_at) "
                    "VALUES ('acct', NULL, 100000, 'grant', :now)"
                ),
                _naive_if_sqlite(store, {"now": now}),
            )
            for row in rows:
                conn.execute(
                    text(
                        "INSERT INTO ledger (account_id, job_id, delta_milli, reason, created_at) "
                        "VALUES ('acct', :job, -7000, 'charge', :now)"
                    ),
                    _naive_if_sqlite(store, {"job": row["id"], "now": now}),
                )
            conn.execute(
                text(
                    "INSERT INTO ledger (account_id, job_id, delta_milli, reason, created_at) "
                    "VALUES ('acct', 'old1', 7000, 'refund', :now)"
                ),
                _naive_if_sqlite(store, {"now": now}),
            )

        store.migrate()

        with store.engine.connect() as conn:
            head = ScriptDirectory.from_config(alembic_config()).get_current_head()
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == head
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
            outbox = {r.job_id: r for r in conn.execute(select(webhooks))}
        assert diff == []
        # Data intact: the account, its key, its balance and every job.
        found = store.authenticate(generated.plaintext)
        assert found is not None and found[0].id == "acct"
        # 0003 filled the running balance from the ledger.
        assert store.balance("acct") == 100 - 4 * 7 + 7
        assert store.verify_ledger() == []
        assert store.get("recent1").output_key == "outputs/20260101/recent1xxxxxxxxxxxxxxx.jpg"
        assert store.get("old1").status == "failed"
        # Jobs ended within the webhook window get their (first ever) delivery.
        assert set(outbox) == {"recent1"} and outbox["recent1"].status == "pending"
        assert store.get("recent1").webhook.status == "pending"  # type: ignore[union-attr]
        assert store.get("old1").webhook is None

        # The queue works on old rows: the expired lease is taken over, the
        # queued job runs, and both end with events and outbox rows.
        seen = set()
        for _ in range(2):
            job = store.claim("new-worker", 30)
            assert job is not None
            seen.add(job.id)
            assert store.complete(
                job.id,
                "new-worker",
                output_key=f"outputs/20260101/{job.id}xxxxxxxxxxxxxx.jpg",
                width=1,
                height=1,
                format="jpeg",
                processing_ms=1,
                engines={},
                pipeline=[],
                output_ttl_seconds=60,
            )
        assert seen == {"queued1", "running1"}
        assert [e.status for e in store.events("running1")] == ["processing", "completed"]
        assert store.events("running1")[0].detail == "lease_expired"
        assert store.get("running1").webhook.status == "pending"  # type: ignore[union-attr]

        # New ledger rows keep the running balance (the trigger 0003 added).
        store.add_credits("acct", 5)
        assert store.balance("acct") == 100 - 4 * 7 + 7 + 5
        assert store.verify_ledger() == []

        # Running the migrations again changes nothing.
        store.migrate()
        assert store.balance("acct") == 100 - 4 * 7 + 7 + 5
    finally:
        store.close()


def test_0003_downgrades_and_upgrades_again_keeping_balances(empty_db_url: str) -> None:
    store = JobStore(empty_db_url)
    try:
        store.migrate()
        account = store.create_account("acme", credits=5)
        store.add_credits(account.id, 2)
        config = alembic_config()
        with store.engine.begin() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, "0002")
        with store.engine.connect() as conn:
            assert "balance_milli" not in {c["name"] for c in inspect(conn).get_columns("accounts")}
        store.migrate()
        # Refilled from the ledger, and kept by the trigger again.
        assert store.balance(account.id) == 7.0
        store.add_credits(account.id, 1)
        assert store.balance(account.id) == 8.0 and store.verify_ledger() == []
    finally:
        store.close()


def test_0004_downgrades_and_upgrades_again(empty_db_url: str) -> None:
    """0004 swaps the full indexes of jobs for partial ones (and, on PostgreSQL,
    adds lightbox_complete_and_claim); down and up again leaves a working queue."""
    store = JobStore(empty_db_url)
    try:
        store.migrate()
        account = store.create_account("acme", credits=10)
        store.submit(
            account_id=account.id,
            operation="upscale",
            params={},
            inputs={"image": "inputs/20260101/" + "i" * 22 + ".png"},
            credits=1,
            pipeline=["upscale"],
            estimated_seconds=1,
        )

        def job_indexes() -> set[str]:
            with store.engine.connect() as conn:
                return {ix["name"] for ix in inspect(conn).get_indexes("jobs")}

        def has_pair_function() -> bool:
            if store.dialect != "postgresql":
                return False
            with store.engine.connect() as conn:
                return bool(
                    conn.execute(
                        text("SELECT count(*) FROM pg_proc WHERE proname = :name"),
                        {"name": "lightbox_complete_and_claim"},
                    ).scalar_one()
                )

        partial = {"ix_jobs_queue", "ix_jobs_leases", "ix_jobs_running", "ix_jobs_purged_completed"}
        assert partial <= job_indexes()
        assert has_pair_function() == (store.dialect == "postgresql")
        config = alembic_config()
        with store.engine.begin() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, "0003")
        assert not partial & job_indexes()
        assert {"ix_jobs_status_run_after", "ix_jobs_account_status"} <= job_indexes()
        assert not has_pair_function()
        store.migrate()
        assert partial <= job_indexes()
        with store.engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), metadata) == []
        job = store.claim("w1", 30)
        assert job is not None
        assert store.complete_and_claim(job.id, "w1", lease_seconds=30, **OUTCOME) == (True, None)
        assert store.get(job.id).status == "completed" and store.verify_ledger() == []
    finally:
        store.close()
