"""The partial indexes of migration 0004 are only worth having if the queries
can use them: a partial index is chosen only when the query's WHERE clause
states the index's condition. These tests capture the statements the store
really sends and ask each database for its plan."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import event

from services.jobs.store import JobStore

from .conftest import FakeClock
from .test_store import submit


@contextmanager
def _captured(store: JobStore) -> Iterator[list[tuple[str, Any]]]:
    statements: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if re.match(r"\s*(SELECT|UPDATE|DELETE)\b", statement) and " jobs" in statement:
            statements.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", capture)
    try:
        yield statements
    finally:
        event.remove(store.engine, "before_cursor_execute", capture)


def _indexes_used(store: JobStore, statements: list[tuple[str, Any]]) -> set[str]:
    """Index names in the plans of these statements. PostgreSQL is told not to
    scan the table (on a tiny test table it would, whether or not an index
    fits) and plans each statement as a prepared statement that has run many
    times: a generic plan, blind to bound parameters, so a status an index is
    conditioned on must be a literal. (SQLite looks at bound values, and
    prepares again when they change.)"""
    plans = []
    with store.engine.connect() as conn:
        if store.dialect == "postgresql":
            conn.exec_driver_sql("SET enable_seqscan = off")
            conn.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
        for statement, parameters in statements:
            if store.dialect == "postgresql":
                rows = _explain_generic(conn, statement, parameters)
            else:
                rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
            plans.append("\n".join(str(r[-1]) for r in rows))
        conn.rollback()
    return set(re.findall(r"\b(ix_jobs_\w+|jobs_pkey)\b", "\n".join(plans)))


def _explain_generic(conn: Any, statement: str, parameters: dict[str, Any]) -> list[Any]:
    names: list[str] = []

    def placeholder(match: re.Match[str]) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    prepared = re.sub(r"%\((\w+)\)s", placeholder, statement)
    raw = conn.connection.driver_connection
    values = ", ".join(sql.Literal(parameters[n]).as_string(raw) for n in names)
    conn.exec_driver_sql(f"PREPARE lightbox_probe AS {prepared}")
    try:
        return conn.exec_driver_sql(
            f"EXPLAIN EXECUTE lightbox_probe({values})"
            if names
            else "EXPLAIN EXECUTE lightbox_probe"
        ).fetchall()
    finally:
        conn.exec_driver_sql("DEALLOCATE lightbox_probe")


def _calls(store: JobStore) -> dict[str, tuple[Callable[[], Any], set[str]]]:
    """Store calls and the partial indexes their statements must be able to use."""
    day = timedelta(days=1)
    calls: dict[str, tuple[Callable[[], Any], set[str]]] = {
        "queue_depth": (store.queue_depth, {"ix_jobs_queue"}),
        "inputs to purge": (
            lambda: store.jobs_with_inputs_to_purge(day),
            {"ix_jobs_inputs_purge"},
        ),
        "outputs to purge": (store.jobs_with_outputs_to_purge, {"ix_jobs_output_purge"}),
        "old jobs": (lambda: store.delete_old_jobs(day), {"ix_jobs_purged_completed"}),
        "orphan sweep": (
            lambda: store.referenced_output_keys(["outputs/20260101/" + "a" * 22 + ".png"]),
            {"ix_jobs_output_key"},
        ),
    }
    if store.dialect == "sqlite":
        # On PostgreSQL these are lightbox_claim and lightbox_next_due (see below).
        calls["claim"] = (
            lambda: store.claim("w1", 30),
            {"ix_jobs_leases", "ix_jobs_queue", "ix_jobs_running"},
        )
        calls["wait_for_work's look-ahead"] = (
            store._seconds_until_due,  # noqa: SLF001 - what wait_for_work runs
            {"ix_jobs_queue", "ix_jobs_leases"},
        )
    return calls


def test_the_store_queries_use_the_partial_indexes(store: JobStore, clock: FakeClock) -> None:
    account = store.create_account("acme", credits=100, max_concurrent_jobs=2)
    for _ in range(3):
        submit(store, account)
        clock.advance(1)
    for name, (call, expected) in _calls(store).items():
        with _captured(store) as statements:
            call()
        assert statements, name
        used = _indexes_used(store, statements)
        assert expected <= used, f"{name}: plans use {sorted(used)}, not {sorted(expected)}"


@pytest.mark.postgres
@pytest.mark.parametrize(
    "call",
    [
        "SELECT id FROM lightbox_claim('w1', %(now)s, %(lease)s, 50, %(give_up)s)",
        "SELECT claimable FROM lightbox_next_due(%(now)s)",
    ],
    ids=["lightbox_claim", "lightbox_next_due"],
)
def test_the_queue_functions_use_the_partial_indexes(
    store_pg_url: str, clock: FakeClock, call: str
) -> None:
    """The statements inside the PL/pgSQL functions (planned there, with their
    literal statuses) read the queue and lease indexes, as counted by the
    server's index statistics."""
    store = JobStore(store_pg_url, clock=clock)
    try:
        account = store.create_account("acme", credits=100, max_concurrent_jobs=2)
        submit(store, account)
        dsn = store.engine.url.set(drivername="postgresql").render_as_string(False)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("SET enable_seqscan = off")

            def scans() -> dict[str, int]:
                conn.execute("SELECT pg_stat_force_next_flush()")
                rows = conn.execute(
                    "SELECT indexrelname, idx_scan FROM pg_stat_user_indexes WHERE relname = 'jobs'"
                ).fetchall()
                return dict(rows)

            before = scans()
            found = conn.execute(
                call,
                {
                    "now": clock(),
                    "lease": clock() + timedelta(seconds=30),
                    "give_up": clock() + timedelta(days=1),
                },
            ).fetchall()
            after = scans()
        assert len(found) == 1
        grew = {name for name, count in after.items() if count > before.get(name, 0)}
        assert {"ix_jobs_leases", "ix_jobs_queue", "ix_jobs_running"} <= grew, grew
    finally:
        store.close()
