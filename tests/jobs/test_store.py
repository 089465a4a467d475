"""JobStore on SQLite and PostgreSQL: schema, keys, ledger, submit, queue."""

from __future__ import annotations

import hashlib
import multiprocessing
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, func, inspect, select, text
from sqlalchemy.exc import DBAPIError

from services.common.errors import (
    Conflict,
    InsufficientCredits,
    InvalidParameter,
    LightboxError,
    NotFound,
)
from services.jobs.migrations import alembic_config
from services.jobs.models import api_keys, ledger, metadata
from services.jobs.store import AccountRecord, JobRecord, JobStore

if TYPE_CHECKING:
    from tests.jobs.conftest import FakeClock

PRICE = 7.0


def submit(store: JobStore, account: AccountRecord, **overrides: Any) -> tuple[JobRecord, bool]:
    fields: dict[str, Any] = {
        "account_id": account.id,
        "operation": "product-photo",
        "params": {"preset": "white-studio", "scale": 0.8},
        "inputs": {"image": "in/abc"},
        "credits": PRICE,
        "pipeline": ["remove-background", "replace-background", "add-shadow"],
        "estimated_seconds": 3,
    }
    fields.update(overrides)
    return store.submit(**fields)


def ledger_rows(store: JobStore, account_id: str) -> list[Any]:
    with store.engine.connect() as conn:
        return list(
            conn.execute(
                select(ledger).where(ledger.c.account_id == account_id).order_by(ledger.c.id)
            )
        )


def ledger_sum(store: JobStore, account_id: str) -> float:
    return sum(row.delta_milli for row in ledger_rows(store, account_id)) / 1000


def complete(store: JobStore, job_id: str, worker: str) -> bool:
    return store.complete(
        job_id,
        worker,
        output_key="out/xyz",
        width=1024,
        height=768,
        format="jpeg",
        processing_ms=1234,
        engines={"matting": "classical", "background": "solid:#ffffff"},
        pipeline=["remove-background", "replace-background"],
        output_ttl_seconds=86400,
    )


# -- schema ----------------------------------------------------------------


def test_migrate_from_empty_then_again_matches_models(empty_db_url: str) -> None:
    store = JobStore(empty_db_url)
    try:
        store.migrate()
        store.migrate()
        head = ScriptDirectory.from_config(alembic_config()).get_current_head()
        with store.engine.connect() as conn:
            assert conn.execute(
                text("SELECT version_num FROM alembic_version")
            ).scalars().all() == [head]
            assert set(inspect(conn).get_table_names()) >= {
                "accounts",
                "api_keys",
                "jobs",
                "ledger",
                "idempotency_keys",
            }
            # The migrations build exactly what models.py declares.
            diff = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True}), metadata
            )
            assert diff == []
        account = store.create_account("after-migrate", credits=1)
        assert store.balance(account.id) == 1.0
    finally:
        store.close()


def _migrate_in_process(url: str, start: Any) -> None:
    store = JobStore(url)
    try:
        start.wait()
        store.migrate()
    finally:
        store.close()


def test_concurrent_migrations_from_empty_all_succeed(empty_db_url: str) -> None:
    # The jobs API and every worker process migrate when they start.
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(3)
    processes = [
        context.Process(target=_migrate_in_process, args=(empty_db_url, start)) for _ in range(3)
    ]
    for p in processes:
        p.start()
    for p in processes:
        p.join(timeout=120)
    assert [p.exitcode for p in processes] == [0, 0, 0]
    store = JobStore(empty_db_url)
    try:
        with store.engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar_one() == 1
        assert store.create_account("works").name == "works"
    finally:
        store.close()


def test_sqlite_connections_use_wal_busy_timeout_and_foreign_keys(tmp_path: Any) -> None:
    store = JobStore(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one() > 0
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1
    finally:
        store.close()


def test_in_memory_sqlite_is_refused() -> None:
    with pytest.raises(ValueError, match="in-memory"):
        JobStore("sqlite://")


# -- accounts and keys -----------------------------------------------------


def test_account_round_trip_and_not_found(store: JobStore) -> None:
    account = store.create_account(
        "acme",
        plan="pro",
        rate_limit_per_minute=120,
        allowed_operations=["upscale"],
        max_concurrent_jobs=2,
    )
    assert store.get_account(account.id) == account
    assert (account.plan, account.rate_limit_per_minute, account.max_concurrent_jobs) == (
        "pro",
        120,
        2,
    )
    assert account.allowed_operations == ["upscale"]
    assert len(account.webhook_secret) >= 32
    assert len(account.id) * 4 >= 96
    with pytest.raises(NotFound):
        store.get_account("nope")
    with pytest.raises(NotFound):
        store.create_api_key("nope")


def test_api_keys_are_stored_hashed_only(store: JobStore) -> None:
    account = store.create_account("acme")
    plaintext, record = store.create_api_key(account.id)
    assert plaintext.startswith(record.prefix + "_")
    assert record.prefix.startswith("lb_live_") and len(record.prefix) == 16
    secret = plaintext[len(record.prefix) + 1 :]
    with store.engine.connect() as conn:
        rows = [tuple(row) for row in conn.execute(select(api_keys))]
    stored = " ".join(str(value) for row in rows for value in row)
    assert plaintext not in stored
    assert secret not in stored
    assert hashlib.sha256(plaintext.encode()).hexdigest() in stored


def test_authenticate_ok_unknown_malformed_and_revoked(store: JobStore) -> None:
    account = store.create_account("acme")
    plaintext, record = store.create_api_key(account.id)
    other_plain, other = store.create_api_key(account.id)

    found = store.authenticate(plaintext)
    assert found is not None
    assert found[0].id == account.id and found[1].id == record.id

    # Right prefix, wrong secret; unknown prefix; not a key at all.
    assert store.authenticate(plaintext[:-4] + "AAAA") is None
    assert store.authenticate("lb_live_00000000_" + "A" * 43) is None
    assert store.authenticate("") is None
    assert store.authenticate("Bearer " + plaintext) is None

    assert store.revoke_key(record.prefix).revoked_at is not None
    assert store.authenticate(plaintext) is None
    assert store.revoke_key(other.id).revoked_at is not None
    assert store.authenticate(other_plain) is None
    with pytest.raises(NotFound):
        store.revoke_key("lb_live_ffffffff")

    listed = store.list_keys(account.id)
    assert {k.id for k in listed} == {record.id, other.id}
    assert all(k.revoked_at is not None for k in listed)
    assert store.list_keys("someone-else") == []


# -- the ledger --------------------------------------------------------------


def test_balance_is_the_sum_of_the_ledger(store: JobStore) -> None:
    account = store.create_account("acme", credits=10)
    assert store.add_credits(account.id, 2.5) == 12.5
    assert store.add_credits(account.id, -0.5, reason="adjustment") == 12.0
    job, _ = submit(store, account, credits=0.1)
    assert store.balance(account.id) == pytest.approx(11.9)
    store.cancel(job.id, account.id)
    assert store.balance(account.id) == 12.0
    assert ledger_sum(store, account.id) == store.balance(account.id)
    assert [row.reason for row in ledger_rows(store, account.id)] == [
        "grant",
        "grant",
        "adjustment",
        "charge",
        "refund",
    ]


def test_ledger_is_append_only_and_the_running_balance_is_checked(store: JobStore) -> None:
    account = store.create_account("acme", credits=10)
    job, _ = submit(store, account, credits=2)
    store.cancel(job.id, account.id)
    assert store.verify_ledger() == []
    # The database itself refuses to rewrite history, whatever the caller.
    for statement in ("UPDATE ledger SET delta_milli = 0", "DELETE FROM ledger"):
        with pytest.raises(DBAPIError, match="append-only"):
            with store.engine.begin() as conn:
                conn.execute(text(statement))
    assert ledger_sum(store, account.id) == store.balance(account.id) == 10.0
    # A running balance written around the store is caught and named.
    with store.engine.begin() as conn:
        conn.execute(
            text("UPDATE accounts SET balance_milli = 99000 WHERE id = :id"), {"id": account.id}
        )
    [mismatch] = store.verify_ledger()
    assert (mismatch.account_id, mismatch.balance, mismatch.ledger_sum) == (account.id, 99.0, 10.0)


def test_admin_verify_ledger_exits_1_on_a_mismatch(
    db_url: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from services import cli

    monkeypatch.setenv("LIGHTBOX_HOME", str(tmp_path))
    monkeypatch.setenv("LIGHTBOX_DATABASE_URL", db_url)
    store = JobStore(db_url)
    try:
        account = store.create_account("cli", credits=10)
        assert cli.main(["admin", "verify-ledger"]) == 0
        assert "equals the sum" in capsys.readouterr().out
        with store.engine.begin() as conn:
            conn.execute(
                text("UPDATE accounts SET balance_milli = 1 WHERE id = :id"), {"id": account.id}
            )
        assert cli.main(["admin", "verify-ledger"]) == 1
        assert (
            f"MISMATCH account {account.id}: balance 0.001, ledger sum 10"
            in capsys.readouterr().out
        )
    finally:
        store.close()


def test_add_credits_rejects_overdraft_and_bad_reasons(store: JobStore) -> None:
    account = store.create_account("acme", credits=1)
    with pytest.raises(InsufficientCredits) as err:
        store.add_credits(account.id, -2, reason="adjustment")
    assert err.value.extra == {"required": 2.0, "available": 1.0}
    with pytest.raises(InvalidParameter):
        store.add_credits(account.id, 5, reason="refund")
    with pytest.raises(InvalidParameter):
        store.add_credits(account.id, 0)
    with pytest.raises(NotFound):
        store.add_credits("nope", 5)
    with pytest.raises(NotFound):
        store.balance("nope")
    assert store.balance(account.id) == 1.0


# -- submit ------------------------------------------------------------------


def test_submit_debits_with_the_job(store: JobStore, clock: FakeClock) -> None:
    account = store.create_account("acme", credits=10)
    job, replayed = submit(store, account, webhook_url="https://example.com/hook")
    assert replayed is False
    assert job.status == "queued" and job.credits == PRICE
    assert job.params == {"preset": "white-studio", "scale": 0.8}
    assert job.inputs == {"image": "in/abc"}
    assert job.webhook_url == "https://example.com/hook"
    assert job.created_at == clock() and job.created_at.tzinfo is not None
    assert len(job.id) * 4 >= 96
    assert store.balance(account.id) == 3.0
    charges = [r for r in ledger_rows(store, account.id) if r.reason == "charge"]
    assert [(r.job_id, r.delta_milli) for r in charges] == [(job.id, -7000)]
    assert store.get(job.id, account.id) == job
    assert store.queue_depth() == 1


def test_insufficient_credits_names_required_and_available(store: JobStore) -> None:
    account = store.create_account("acme", credits=5)
    with pytest.raises(InsufficientCredits) as err:
        submit(store, account)
    assert err.value.extra == {"required": 7.0, "available": 5.0}
    assert err.value.http_status == 402
    assert store.balance(account.id) == 5.0
    assert store.list_jobs(account.id) == ([], None)
    with pytest.raises(NotFound):
        submit(store, AccountRecord("ghost", "g", "dev", 60, [], "s", 4))


def test_blocked_at_submit_is_stored_and_charges_nothing(store: JobStore) -> None:
    account = store.create_account("acme", credits=10)
    job, _ = submit(store, account, blocked_reason="The prompt names a blocked term.")
    assert job.status == "blocked"
    assert job.error_code == "content_blocked"
    assert job.error_message == "The prompt names a blocked term."
    assert job.credits == 0.0
    assert store.balance(account.id) == 10.0
    assert store.claim("w1", 30) is None


def test_idempotent_repeat_returns_the_job_and_charges_once(
    store: JobStore, clock: FakeClock
) -> None:
    account = store.create_account("acme", credits=30)
    first, replayed_first = submit(store, account, idempotency_key="k-1", request_fingerprint="f")
    clock.advance(3600)
    again, replayed_again = submit(store, account, idempotency_key="k-1", request_fingerprint="f")
    assert (replayed_first, replayed_again) == (False, True)
    assert again == first
    assert store.balance(account.id) == 23.0

    with pytest.raises(LightboxError) as err:
        submit(store, account, idempotency_key="k-1", request_fingerprint="other")
    assert err.value.code == "idempotency_conflict"
    assert err.value.http_status == 409

    # Keys are per account.
    other = store.create_account("other", credits=10)
    theirs, replayed = submit(store, other, idempotency_key="k-1", request_fingerprint="other")
    assert replayed is False and theirs.id != first.id

    # After 24 hours the key may be used again, for a new job.
    clock.advance(24 * 3600)
    later, replayed = submit(store, account, idempotency_key="k-1", request_fingerprint="new")
    assert replayed is False and later.id != first.id
    assert store.balance(account.id) == 16.0


def test_concurrent_repeats_of_one_key_make_one_job_and_one_charge(store: JobStore) -> None:
    account = store.create_account("acme", credits=100)
    threads_n = 6
    barrier = threading.Barrier(threads_n)
    results: list[tuple[JobRecord, bool]] = []
    errors: list[BaseException] = []

    def run() -> None:
        barrier.wait()
        try:
            results.append(submit(store, account, idempotency_key="same", request_fingerprint="f"))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len({job.id for job, _ in results}) == 1
    assert sorted(replayed for _, replayed in results) == [False] + [True] * (threads_n - 1)
    assert [r.reason for r in ledger_rows(store, account.id)].count("charge") == 1
    assert store.balance(account.id) == 93.0


def test_submit_validates_its_arguments(store: JobStore) -> None:
    account = store.create_account("acme", credits=10)
    with pytest.raises(InvalidParameter):
        submit(store, account, credits=-1)
    with pytest.raises(InvalidParameter):
        submit(store, account, credits=float("nan"))
    with pytest.raises(InvalidParameter):
        submit(store, account, idempotency_key="x" * 256)
    with pytest.raises(InvalidParameter):
        submit(store, account, max_attempts=0)
    assert store.balance(account.id) == 10.0


# -- reading -----------------------------------------------------------------


def test_get_hides_other_accounts_jobs(store: JobStore) -> None:
    mine = store.create_account("mine", credits=10)
    theirs = store.create_account("theirs", credits=10)
    job, _ = submit(store, mine)
    with pytest.raises(NotFound) as not_yours:
        store.get(job.id, theirs.id)
    with pytest.raises(NotFound) as unknown:
        store.get("0" * 32, theirs.id)
    assert not_yours.value.http_status == unknown.value.http_status == 404
    assert store.get(job.id).id == job.id


def test_list_jobs_pages_newest_first(store: JobStore, clock: FakeClock) -> None:
    account = store.create_account("acme", credits=100)
    other = store.create_account("other", credits=100)
    made = []
    for i in range(5):
        made.append(submit(store, account, credits=1)[0].id)
        if i != 2:  # two jobs share a timestamp: the id breaks the tie
            clock.advance(1)
    submit(store, other, credits=1)

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page, cursor = store.list_jobs(account.id, limit=2, cursor=cursor)
        seen.extend(job.id for job in page)
        pages += 1
        if cursor is None:
            break
    assert pages == 3
    assert sorted(seen) == sorted(made) and len(seen) == 5
    created = [store.get(job_id).created_at for job_id in seen]
    assert created == sorted(created, reverse=True)

    with pytest.raises(InvalidParameter):
        store.list_jobs(account.id, cursor="not-a-cursor")
    with pytest.raises(InvalidParameter):
        store.list_jobs(account.id, limit=0)


# -- cancel ------------------------------------------------------------------


def test_cancel_refunds_once_and_only_queued_jobs(store: JobStore) -> None:
    account = store.create_account("acme", credits=14)
    other = store.create_account("other")
    queued, _ = submit(store, account)
    running, _ = submit(store, account)

    with pytest.raises(NotFound):
        store.cancel(queued.id, other.id)
    canceled = store.cancel(queued.id, account.id)
    assert canceled.status == "canceled" and canceled.refunded_at is not None
    assert store.balance(account.id) == 7.0
    with pytest.raises(Conflict):
        store.cancel(queued.id, account.id)
    assert store.balance(account.id) == 7.0

    claimed = store.claim("w1", 30)
    assert claimed is not None and claimed.id == running.id
    with pytest.raises(Conflict) as err:
        store.cancel(running.id, account.id)
    assert err.value.extra["status"] == "processing"
    assert store.get(running.id).status == "processing"
    assert [r.reason for r in ledger_rows(store, account.id)].count("refund") == 1


# -- the queue ---------------------------------------------------------------


def test_claim_heartbeat_and_expired_lease_returns_the_job(
    store: JobStore, clock: FakeClock
) -> None:
    account = store.create_account("acme", credits=10)
    job, _ = submit(store, account)

    first = store.claim("w1", lease_seconds=30)
    assert first is not None and first.id == job.id
    assert (first.status, first.attempts, first.lease_owner) == ("processing", 1, "w1")
    assert first.started_at == clock()
    assert store.claim("w2", 30) is None

    assert store.heartbeat(job.id, "w1", 30, stage="matting") is True
    assert store.get(job.id).stage == "matting"
    assert store.heartbeat(job.id, "w2", 30) is False

    clock.advance(29)
    assert store.claim("w2", 30) is None  # the heartbeat extended the lease
    clock.advance(2)
    second = store.claim("w2", 30)
    assert second is not None and second.id == job.id
    assert (second.attempts, second.lease_owner) == (2, "w2")
    assert [e["code"] for e in second.attempt_errors] == ["lease_expired"]
    assert second.started_at == first.started_at

    # The first worker comes back too late: it can neither extend nor finish.
    assert store.heartbeat(job.id, "w1", 30) is False
    assert complete(store, job.id, "w1") is False
    assert complete(store, job.id, "w2") is True
    assert complete(store, job.id, "w2") is False

    done = store.get(job.id)
    assert done.status == "completed"
    assert (done.output_key, done.width, done.height, done.format) == ("out/xyz", 1024, 768, "jpeg")
    assert done.engines == {"matting": "classical", "background": "solid:#ffffff"}
    assert done.pipeline == ["remove-background", "replace-background"]
    assert done.processing_ms == 1234
    assert done.completed_at == clock()
    assert (done.output_expires_at - done.completed_at).total_seconds() == 86400
    assert store.balance(account.id) == 3.0
    assert store.queue_depth() == 0


def test_complete_and_claim_records_the_outcome_then_leases_the_next_job(
    store: JobStore, clock: FakeClock
) -> None:
    account = store.create_account("acme", credits=20)
    first, _ = submit(store, account)
    clock.advance(1)
    second, _ = submit(store, account)
    claimed = store.claim("w1", 30)
    assert claimed is not None and claimed.id == first.id
    outcome = {
        "output_key": "out/xyz",
        "width": 8,
        "height": 6,
        "format": "png",
        "processing_ms": 5,
        "engines": {"matting": "classical"},
        "pipeline": ["remove-background"],
        "output_ttl_seconds": 60,
    }
    done, following = store.complete_and_claim(first.id, "w1", lease_seconds=30, **outcome)
    assert done is True
    assert following is not None and following.id == second.id
    assert following.lease_owner == "w1" and following.attempts == 1
    finished = store.get(first.id)
    assert (finished.status, finished.output_key, finished.width) == ("completed", "out/xyz", 8)
    assert [e.status for e in store.events(first.id)] == ["queued", "processing", "completed"]
    assert [e.status for e in store.events(second.id)] == ["queued", "processing"]
    # Without the lease nothing is recorded, and an empty queue claims nothing.
    done, following = store.complete_and_claim(first.id, "w1", lease_seconds=30, **outcome)
    assert (done, following) == (False, None)
    done, following = store.complete_and_claim(second.id, "w1", lease_seconds=30, **outcome)
    assert (done, following) == (True, None)
    assert store.balance(account.id) == 20 - 2 * PRICE and store.verify_ledger() == []


def test_complete_and_claim_without_the_lease_records_nothing_and_claims_nothing(
    store: JobStore, clock: FakeClock
) -> None:
    account = store.create_account("acme", credits=20)
    first, _ = submit(store, account)
    store.claim("w1", 30)
    clock.advance(31)  # w1's lease expires; w2 takes the job over
    assert store.claim("w2", 30).id == first.id  # type: ignore[union-attr]
    waiting, _ = submit(store, account)
    outcome = {
        "output_key": "out/late",
        "width": 1,
        "height": 1,
        "format": "png",
        "processing_ms": 5,
        "engines": {},
        "pipeline": ["remove-background"],
        "output_ttl_seconds": 60,
    }
    assert store.complete_and_claim(first.id, "w1", lease_seconds=30, **outcome) == (False, None)
    taken_over = store.get(first.id)
    assert (taken_over.status, taken_over.lease_owner, taken_over.output_key) == (
        "processing",
        "w2",
        None,
    )
    # The refused completion took nothing from the queue.
    assert store.get(waiting.id).status == "queued"
    assert [e.status for e in store.events(waiting.id)] == ["queued"]
    assert store.claim("w3", 30).id == waiting.id  # type: ignore[union-attr]


def test_claim_takes_the_oldest_runnable_job(store: JobStore, clock: FakeClock) -> None:
    account = store.create_account("acme", credits=100, max_concurrent_jobs=10)
    ids = []
    for _ in range(3):
        ids.append(submit(store, account)[0].id)
        clock.advance(1)
    claimed = [store.claim(f"w{i}", 30) for i in range(4)]
    assert [job.id if job else None for job in claimed] == [*ids, None]


def test_transient_failure_requeues_with_backoff(store: JobStore, clock: FakeClock) -> None:
    account = store.create_account("acme", credits=10)
    job, _ = submit(store, account)
    store.claim("w1", 30)
    failed = store.fail(
        job.id,
        "w1",
        code="triton_unavailable",
        message="connection refused",
        transient=True,
        retry_base_seconds=2.0,
    )
    assert failed.status == "queued"
    assert failed.lease_owner is None and failed.error_code is None
    assert failed.run_after is not None and failed.run_after > clock()
    assert 2.0 <= (failed.run_after - clock()).total_seconds() <= 4.0
    assert failed.attempt_errors == [
        {
            "attempt": 1,
            "code": "triton_unavailable",
            "message": "connection refused",
            "at": failed.attempt_errors[0]["at"],
        }
    ]
    assert store.balance(account.id) == 3.0  # still charged: it will run again

    assert store.claim("w2", 30) is None
    clock.advance(4.01)
    again = store.claim("w2", 30)
    assert again is not None and again.id == job.id and again.attempts == 2


def test_permanent_failure_fails_and_refunds_exactly_once(store: JobStore) -> None:
    account = store.create_account("acme", credits=10)
    job, _ = submit(store, account)
    store.claim("w1", 30)
    failed = store.fail(
        job.id, "w1", code="invalid_image", message="cannot decode", transient=False
    )
    assert failed.status == "failed"
    assert (failed.error_code, failed.error_message) == ("invalid_image", "cannot decode")
    assert failed.completed_at is not None and failed.refunded_at is not None
    assert store.balance(account.id) == 10.0

    # A repeat, or another worker, changes nothing.
    assert store.fail(job.id, "w1", code="x", message="y", transient=False).error_code == (
        "invalid_image"
    )
    assert store.fail(job.id, "w2", code="x", message="y", transient=True).status == "failed"
    assert complete(store, job.id, "w1") is False
    assert store.balance(account.id) == 10.0
    assert [r.reason for r in ledger_rows(store, account.id)].count("refund") == 1
    assert ledger_sum(store, account.id) == 10.0


def test_transient_failures_stop_at_max_attempts(store: JobStore, clock: FakeClock) -> None:
    account = store.create_account("acme", credits=10)
    job, _ = submit(store, account, max_attempts=2)
    store.claim("w1", 30)
    assert store.fail(job.id, "w1", code="timeout", message="t1", transient=True).status == (
        "queued"
    )
    clock.advance(10)
    assert store.claim("w1", 30) is not None
    final = store.fail(job.id, "w1", code="timeout", message="t2", transient=True)
    assert final.status == "failed" and final.error_code == "timeout"
    assert [e["attempt"] for e in final.attempt_errors] == [1, 2]
    assert store.balance(account.id) == 10.0
    clock.advance(10)
    assert store.claim("w1", 30) is None


def test_expired_lease_on_the_last_attempt_fails_the_job(store: JobStore, clock: FakeClock) -> None:
    account = store.create_account("acme", credits=10)
    job, _ = submit(store, account, max_attempts=1)
    clock.advance(1)
    other, _ = submit(store, account, credits=1)
    assert store.claim("w1", 5).id == job.id
    clock.advance(6)
    # The dead worker's job is failed on the way; the claim goes on to the next job.
    next_job = store.claim("w2", 5)
    assert next_job is not None and next_job.id == other.id
    dead = store.get(job.id)
    assert dead.status == "failed" and dead.error_code == "attempts_exhausted"
    assert [e["code"] for e in dead.attempt_errors] == ["lease_expired"]
    assert store.balance(account.id) == 9.0
    assert complete(store, job.id, "w1") is False


def test_block_by_worker_refunds(store: JobStore) -> None:
    account = store.create_account("acme", credits=10)
    job, _ = submit(store, account)
    assert store.block(job.id, "w2", code="content_blocked", message="nope").status == "queued"
    store.claim("w1", 30)
    blocked = store.block(job.id, "w1", code="content_blocked", message="unsafe output")
    assert blocked.status == "blocked" and blocked.error_code == "content_blocked"
    assert store.balance(account.id) == 10.0
    with pytest.raises(NotFound):
        store.block("0" * 32, "w1", code="content_blocked", message="x")


def test_account_concurrency_cap_leaves_extra_jobs_queued(
    store: JobStore, clock: FakeClock
) -> None:
    busy = store.create_account("busy", credits=100, max_concurrent_jobs=2)
    calm = store.create_account("calm", credits=100)
    busy_jobs = []
    for _ in range(3):
        busy_jobs.append(submit(store, busy)[0])
        clock.advance(1)
    calm_job, _ = submit(store, calm)

    first, second = store.claim("w1", 30), store.claim("w2", 30)
    assert {first.id, second.id} == {busy_jobs[0].id, busy_jobs[1].id}
    # The third busy job is older, but its account is at its cap.
    third = store.claim("w3", 30)
    assert third is not None and third.id == calm_job.id
    assert store.claim("w4", 30) is None
    assert store.get(busy_jobs[2].id).status == "queued"
    assert store.queue_depth() == 1

    assert complete(store, first.id, "w1") is True
    freed = store.claim("w4", 30)
    assert freed is not None and freed.id == busy_jobs[2].id

    # An expired lease frees its slot too.
    clock.advance(31)
    assert store.claim("w5", 30) is not None


def test_wait_for_work_wakes_on_submit(store: JobStore) -> None:
    account = store.create_account("acme", credits=10)
    assert store.claim("w1", 30) is None
    listening = threading.Event()
    returned = threading.Event()

    def wait() -> None:
        store.wait_for_work(0.05)  # on PostgreSQL: this thread starts listening
        listening.set()
        # Far longer than this test may take: returning at all means it was woken.
        store.wait_for_work(600)
        returned.set()

    waiter = threading.Thread(target=wait, daemon=True)
    waiter.start()
    assert listening.wait(60)
    submit(store, account)
    assert returned.wait(60)
    assert store.claim("w1", 30) is not None


def test_wait_for_work_does_not_spin_on_capped_work(store: JobStore) -> None:
    account = store.create_account("acme", credits=100, max_concurrent_jobs=1)
    submit(store, account)
    submit(store, account)
    assert store.claim("w1", 30) is not None
    store.wait_for_work(0.05)
    statements: list[str] = []

    def count(*_args: Any) -> None:
        statements.append("x")

    event.listen(store.engine, "before_cursor_execute", count)
    started = time.monotonic()
    try:
        store.wait_for_work(1.0)
    finally:
        event.remove(store.engine, "before_cursor_execute", count)
    # A claimable-looking but capped job must not make the wait return at once
    # (the worker would then spin between claim and wait): a handful of polls at most.
    assert len(statements) <= 20
    assert time.monotonic() - started >= 0.9


def test_the_look_ahead_says_what_is_claimable_and_when_more_falls_due(
    store: JobStore, clock: FakeClock
) -> None:
    """What an idle worker asks after an empty claim (lightbox_next_due on
    PostgreSQL, the Python probes on SQLite): the same answers on both."""
    look = store._seconds_until_due  # noqa: SLF001 - wait_for_work's look-ahead
    assert look() == (False, None)
    account = store.create_account("acme", credits=100, max_concurrent_jobs=1)
    first, _ = submit(store, account)
    assert look() == (True, None)
    assert store.claim("w1", 30) is not None
    # The only other job waits for the account's one slot: not claimable, and
    # the slot frees when w1's lease runs out.
    submit(store, account)
    assert look() == (False, 30.0)
    clock.advance(10)
    assert look() == (False, 20.0)
    # A transient failure sends the job back to wait out its back-off.
    store.fail(first.id, "w1", code="timeout", message="slow", transient=True)
    claimable, due = look()
    assert claimable is True  # the slot is free again for the other job
    assert store.claim("w2", 30) is not None
    claimable, due = look()
    assert claimable is False and due is not None and 0 < due <= 30
    assert due == (store.get(first.id).run_after - clock()).total_seconds()
    # An expired lease is claimable at once.
    clock.advance(31)
    assert look()[0] is True


def test_queue_depth_counts_queued_jobs(store: JobStore) -> None:
    account = store.create_account("acme", credits=100, max_concurrent_jobs=10)
    for _ in range(3):
        submit(store, account, credits=1)
    assert store.queue_depth() == 3
    store.claim("w1", 30)
    assert store.queue_depth() == 2
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(ledger)).scalar_one() == 4


def test_a_new_jobs_webhook_state_matches_a_later_read(store: JobStore) -> None:
    account = store.create_account("acme", credits=100)
    hook = "https://shop.example.com/hooks/lightbox"
    queued, _ = submit(store, account, webhook_url=hook)
    blocked, _ = submit(store, account, webhook_url=hook, blocked_reason="denied term")
    for job in (queued, blocked):
        assert job.webhook is not None and job.webhook.status == "pending"
        assert job.webhook == store.get(job.id).webhook
