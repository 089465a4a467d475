"""PostgreSQL only: the store survives its connections being killed
(pg_terminate_backend, as in a failover or an operator's intervention)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from sqlalchemy import event, select
from sqlalchemy.engine import make_url

from services.common.errors import ServiceUnavailable
from services.jobs.models import ledger
from services.jobs.store import JobStore
from services.jobs.store.queue.claim import _CLAIM_LOCK_CLASS as CLAIM_LOCK_CLASS

pytestmark = pytest.mark.postgres


@pytest.fixture
def admin(store_pg_url: str) -> Iterator[psycopg.Connection[Any]]:
    conninfo = (
        make_url(store_pg_url).set(drivername="postgresql").render_as_string(hide_password=False)
    )
    with psycopg.connect(conninfo, autocommit=True) as conn:
        yield conn


@pytest.fixture
def pg_store(store_pg_url: str) -> Iterator[JobStore]:
    store = JobStore(store_pg_url)
    yield store
    store.close()


def _terminate(admin: psycopg.Connection[Any], pids: list[int]) -> None:
    for pid in pids:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    # Termination is asynchronous; wait until the backends are really gone.
    for _ in range(200):
        alive = admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", (pids,)
        ).fetchone()
        if alive is not None and alive[0] == 0:
            return
        time.sleep(0.025)
    raise AssertionError(f"backends {pids} survived pg_terminate_backend")


def _other_backends(admin: psycopg.Connection[Any]) -> list[int]:
    rows = admin.execute(
        "SELECT pid FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
    ).fetchall()
    return [row[0] for row in rows]


def _submit(store: JobStore, account_id: str, **overrides: Any) -> Any:
    fields: dict[str, Any] = {
        "account_id": account_id,
        "operation": "upscale",
        "params": {"scale": 4},
        "inputs": {"image": "in/1"},
        "credits": 20,
        "pipeline": ["upscale"],
        "estimated_seconds": 5,
    }
    fields.update(overrides)
    return store.submit(**fields)[0]


def test_calls_succeed_after_every_connection_is_terminated(
    pg_store: JobStore, admin: psycopg.Connection[Any]
) -> None:
    account = pg_store.create_account("acme", credits=100)
    job = _submit(pg_store, account.id)
    assert pg_store.claim("w1", 60) is not None
    pg_store.wait_for_work(0.05)  # opens this thread's LISTEN connection

    backends = _other_backends(admin)
    assert len(backends) >= 2  # a pooled connection and the listener
    _terminate(admin, backends)

    pg_store.ping()
    assert pg_store.get(job.id, account.id).status == "processing"
    assert pg_store.heartbeat(job.id, "w1", 60, stage="upscale") is True
    second = _submit(pg_store, account.id)
    assert pg_store.complete(
        job.id,
        "w1",
        output_key="out/1",
        width=8,
        height=8,
        format="png",
        processing_ms=1,
        engines={"upscale": "lanczos"},
        pipeline=["upscale"],
        output_ttl_seconds=60,
    )
    assert pg_store.balance(account.id) == 60.0

    # The lost LISTEN connection is replaced and wakes waiters again.
    pg_store.wait_for_work(0.05)
    returned = threading.Event()
    waiter = threading.Thread(
        target=lambda: (pg_store.wait_for_work(0.05), pg_store.wait_for_work(600), returned.set()),
        daemon=True,
    )
    _terminate(admin, _other_backends(admin))
    waiter.start()
    claimed = pg_store.claim("w2", 60)
    assert claimed is not None and claimed.id == second.id
    _submit(pg_store, account.id)
    assert returned.wait(60)


def test_connection_lost_mid_transaction_is_retried_without_double_effects(
    pg_store: JobStore, admin: psycopg.Connection[Any]
) -> None:
    """The Python transactions (here: cancel) run again after a lost connection."""
    account = pg_store.create_account("acme", credits=100)
    job = _submit(pg_store, account.id)
    armed = {"INSERT INTO ledger": True}

    def kill_once(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        for marker, pending in armed.items():
            if pending and marker in statement:
                armed[marker] = False
                _terminate(admin, [conn.connection.dbapi_connection.info.backend_pid])

    event.listen(pg_store.engine, "before_cursor_execute", kill_once)
    # Killed after the job was marked canceled, before its refund: the whole
    # transaction rolled back and ran again.
    canceled = pg_store.cancel(job.id, account.id)
    event.remove(pg_store.engine, "before_cursor_execute", kill_once)

    assert armed == {"INSERT INTO ledger": False}
    assert canceled.status == "canceled"
    assert sorted(_ledger_reasons(pg_store, account.id)) == ["charge", "grant", "refund"]
    assert pg_store.balance(account.id) == 100.0


def _killed_while_waiting(
    admin: psycopg.Connection[Any], function: str, blocker: str, call: Any
) -> Any:
    """Run `call` in a thread while the admin connection holds `blocker` (SQL
    taking a lock the function waits for); terminate the function's backend
    mid-statement once, then let its retry through. Returns call's result."""
    result: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: result.update(value=call()), daemon=True)

    def waiting() -> list[int]:
        rows = admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type IN ('Lock', 'Advisory') AND query LIKE %s",
            (f"%{function}%",),
        ).fetchall()
        return [row[0] for row in rows]

    def wait_for(predicate: Any) -> Any:
        for _ in range(400):
            found = predicate()
            if found:
                return found
            time.sleep(0.025)
        raise AssertionError(f"{function} never waited on the lock")

    # The lock is held from a connection of its own: the admin connection
    # watches pg_stat_activity, which a transaction would see frozen.
    with psycopg.connect(admin.info.dsn) as holder:
        holder.execute(blocker)
        thread.start()
        first = wait_for(waiting)
        _terminate(admin, first)
        # The retry runs on a new connection and waits on the same lock.
        wait_for(lambda: [pid for pid in waiting() if pid not in first])
        holder.rollback()
    thread.join(30)
    assert not thread.is_alive()
    return result["value"]


def test_functions_killed_mid_statement_are_retried_without_double_effects(
    pg_store: JobStore, admin: psycopg.Connection[Any]
) -> None:
    """The hot path's SQL functions: a backend terminated inside one rolled
    back, and the store ran the call again on a new connection."""
    account = pg_store.create_account("acme", credits=100)
    job = _killed_while_waiting(
        admin,
        "lightbox_submit",
        f"SELECT 1 FROM accounts WHERE id = '{account.id}' FOR UPDATE",
        lambda: _submit(pg_store, account.id),
    )
    claimed = _killed_while_waiting(
        admin,
        "lightbox_claim",
        f"SELECT pg_advisory_xact_lock({CLAIM_LOCK_CLASS}, hashtext('{account.id}'))",
        lambda: pg_store.claim("w1", 60),
    )
    jobs, _ = pg_store.list_jobs(account.id)
    assert [j.id for j in jobs] == [job.id]
    assert claimed is not None and claimed.id == job.id and claimed.attempts == 1
    assert [e.status for e in pg_store.events(job.id)] == ["queued", "processing"]
    assert sorted(_ledger_reasons(pg_store, account.id)) == ["charge", "grant"]
    assert pg_store.balance(account.id) == 80.0
    assert pg_store.verify_ledger() == []


def _ledger_reasons(store: JobStore, account_id: str) -> list[str]:
    with store.engine.connect() as conn:
        return list(
            conn.execute(select(ledger.c.reason).where(ledger.c.account_id == account_id)).scalars()
        )


@contextmanager
def _pair_stopped_at_claim_lock(
    store: JobStore, admin: psycopg.Connection[Any], account_id: str, job_id: str
) -> Iterator[tuple[list[int], list[Any]]]:
    """w1's complete_and_claim of `job_id`, run in a thread while a connection
    of its own holds the account's claim lock, so that the statement stops
    inside its claim, after its completion. Yields the waiting backends' pids
    and the list that receives the call's result (or exception); leaving the
    block releases the lock and waits for the call to return."""
    results: list[Any] = []

    def pair() -> None:
        try:
            results.append(store.complete_and_claim(job_id, "w1", lease_seconds=60, **OUTCOME))
        except Exception as exc:  # noqa: BLE001 - the caller asserts on it
            results.append(exc)

    thread = threading.Thread(target=pair, daemon=True)
    with psycopg.connect(admin.info.dsn) as holder:
        holder.execute(
            f"SELECT pg_advisory_xact_lock({CLAIM_LOCK_CLASS}, hashtext('{account_id}'))"
        )
        thread.start()
        waiting: list[int] = []
        for _ in range(400):
            waiting = [
                row[0]
                for row in admin.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock'"
                    " AND query LIKE '%lightbox_complete_and_claim%'"
                ).fetchall()
            ]
            if waiting:
                break
            time.sleep(0.025)
        assert waiting, "the pair never waited on the claim lock"
        yield waiting, results
        holder.rollback()
    thread.join(30)
    assert not thread.is_alive()


def test_complete_and_claim_cut_short_runs_again_step_by_step(
    pg_store: JobStore, admin: psycopg.Connection[Any]
) -> None:
    """The pair is one statement and one transaction: while its claim waits,
    nobody sees the completion, and a session killed there took the
    completion with it. The server holds interrupts while committing, so a
    killed statement did not commit: the store runs the completion and the
    claim again one at a time, and the job is completed exactly once."""
    account = pg_store.create_account("acme", credits=100)
    first = _submit(pg_store, account.id)
    second = _submit(pg_store, account.id)
    assert pg_store.claim("w1", 60).id == first.id  # type: ignore[union-attr]
    with _pair_stopped_at_claim_lock(pg_store, admin, account.id, first.id) as (waiting, results):
        # Completed inside the open transaction, not yet for anyone else.
        assert pg_store.get(first.id).status == "processing"
        _terminate(admin, waiting)
    [result] = results
    assert not isinstance(result, Exception), result
    done, following = result
    assert done is True and following is not None and following.id == second.id
    assert pg_store.get(first.id).status == "completed"
    assert [e.status for e in pg_store.events(first.id)] == ["queued", "processing", "completed"]
    assert pg_store.get(second.id).lease_owner == "w1"
    assert [e.status for e in pg_store.events(second.id)] == ["queued", "processing"]
    assert pg_store.balance(account.id) == 60.0 and pg_store.verify_ledger() == []


# What a worker records for a completed job, in these tests.
OUTCOME: dict[str, Any] = {
    "output_key": "outputs/20260101/" + "k" * 22 + ".png",
    "width": 1,
    "height": 1,
    "format": "png",
    "processing_ms": 1,
    "engines": {},
    "pipeline": ["upscale"],
    "output_ttl_seconds": 60,
}


class _CuttableLink:
    """A TCP relay to the database whose connections the test can cut, as a
    network failure would: the client sees its connection drop with no
    message from the server."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self._target)
            with self._lock:
                self._sockets += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for s in (source, sink):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        with self._lock:
            for s in self._sockets:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.cut()
        self._listener.close()


def test_complete_and_claim_on_a_lost_connection_is_unavailable_never_twice(
    store_pg_url: str, admin: psycopg.Connection[Any]
) -> None:
    """A connection that drops mid-statement leaves the outcome unknown: the
    caller gets ServiceUnavailable and the store sends nothing again. Here
    the server, waiting on a lock, did not notice the client leave and went
    on to commit: the job is completed once, a second completion would find
    the lease gone, and the job the pair claimed is leased to a worker that
    never heard of it (its lease expires and another worker runs it)."""
    url = make_url(store_pg_url)
    link = _CuttableLink(url.host or "127.0.0.1", url.port or 5432)
    store = JobStore(url.set(host="127.0.0.1", port=link.port).render_as_string(False))
    try:
        account = store.create_account("acme", credits=100)
        first = _submit(store, account.id)
        second = _submit(store, account.id)
        assert store.claim("w1", 60).id == first.id  # type: ignore[union-attr]
        with _pair_stopped_at_claim_lock(store, admin, account.id, first.id) as (_, results):
            link.cut()
        [result] = results
        assert isinstance(result, ServiceUnavailable), result
        # The orphaned statement ran on once the lock was free.
        for _ in range(400):
            if not admin.execute(
                "SELECT 1 FROM pg_stat_activity WHERE datname = current_database()"
                " AND state = 'active' AND query LIKE '%lightbox_complete_and_claim%'"
                " AND pid <> pg_backend_pid()"
            ).fetchall():
                break
            time.sleep(0.025)
        with psycopg.connect(admin.info.dsn) as check:
            statuses = dict(check.execute("SELECT id, status FROM jobs").fetchall())
        assert statuses == {first.id: "completed", second.id: "processing"}
        assert store.complete(first.id, "w1", **OUTCOME) is False
        assert [e.status for e in store.events(first.id)] == ["queued", "processing", "completed"]
        assert [e.status for e in store.events(second.id)] == ["queued", "processing"]
        assert store.get(second.id).lease_owner == "w1"
        assert store.verify_ledger() == []
    finally:
        store.close()
        link.close()
