"""Engine construction and column types for the jobs database.

One database URL serves both backends: a SQLite file for the embedded stack and
PostgreSQL in production and CI. Everything dialect-specific about connecting
lives here, so the store (`store/`) can read as plain transactions.
"""

from __future__ import annotations

import select
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, Engine, create_engine, event
from sqlalchemy.engine import Connection, Dialect, make_url
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.types import TypeDecorator

# Seconds a SQLite writer waits for another process's write lock before failing.
# Claims and submits hold it for milliseconds; a long wait means something is stuck.
SQLITE_BUSY_TIMEOUT_MS = 30_000

# Execution option read by the SQLite "begin" hook: a write transaction takes the
# database write lock up front (BEGIN IMMEDIATE), so a read-then-write transaction
# can never fail half-way with SQLITE_BUSY on lock upgrade.
WRITE_OPTION = "lightbox_write"


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend.

    PostgreSQL stores `timestamptz`. SQLite has no zone support, so values are
    stored as naive UTC text in SQLAlchemy's fixed-width format, which keeps
    string comparison in SQL (`run_after <= :now`) equal to time comparison.
    Naive datetimes are refused rather than guessed at.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _enable_wal(cursor: Any) -> None:
    # WAL is a property of the file, set once by the first connection. When
    # several processes open a new database at once, the switch can report
    # "database is locked" without waiting on busy_timeout, so retry it.
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def make_engine(database_url: str, *, autocommit: bool = False) -> Engine:
    """An engine that survives dropped connections and, on SQLite, concurrent writers.

    `autocommit` (PostgreSQL): connections that stay in autocommit mode for
    their life, for statements that are their own transaction; switching a
    pooled connection's mode at every checkout costs more than the statement.
    """
    url = make_url(database_url)
    backend = url.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(database_url)
    if backend == "postgresql":
        # recycle bounds how long a connection can sit behind a NAT or proxy
        # that silently drops it. No pool_pre_ping: it costs a round trip per
        # transaction, as much as a claim itself; `_check_alive` below finds
        # the same dead connections without one.
        options: dict[str, Any] = {}
        if autocommit:
            # Nothing to roll back on return: no transaction is ever open.
            options = {"isolation_level": "AUTOCOMMIT", "pool_reset_on_return": None}
        engine = create_engine(url, pool_recycle=1800, pool_size=5, max_overflow=10, **options)
        event.listen(engine, "checkout", _check_alive)
        return engine
    raise ValueError(f"unsupported database backend {backend!r}: use sqlite or postgresql")


def _check_alive(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """Refuse a pooled PostgreSQL connection the server has hung up on.

    An idle pooled connection has nothing to read: nothing is pending and it
    never LISTENs. Anything readable is the server's goodbye, sent when the
    backend was terminated (pg_terminate_backend, a restart) or the end of the
    stream after a crash. The pool then reconnects this slot and retires every
    connection older than now. A connection dropped silently by the network
    is not seen here; the statement on it fails and the store's retry rules
    apply (see JobStore._tx and _statement).
    """
    if dbapi_connection.closed:
        raise InvalidatePoolError("the pooled connection is closed")
    readable, _, _ = select.select([dbapi_connection.fileno()], [], [], 0)
    if readable:
        raise InvalidatePoolError("the server closed the pooled connection")


def _sqlite_engine(database_url: str) -> Engine:
    url = make_url(database_url)
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file::memory:"):
        # Each pooled connection would see its own empty in-memory database, and
        # workers in other processes could not share it at all.
        raise ValueError("the jobs store needs a SQLite file, not an in-memory database")
    Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        pool_pre_ping=True,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Hand transaction control to the "begin" hook below: pysqlite's own
        # implicit BEGIN is deferred and is skipped before DDL.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        _enable_wal(cursor)
        cursor.execute("PRAGMA foreign_keys=ON")
        # Durable at every checkpoint; in WAL mode NORMAL cannot corrupt the
        # database, it can only lose the last commits on power loss.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        write = connection.get_execution_options().get(WRITE_OPTION, True)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine
