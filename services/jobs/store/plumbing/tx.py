"""Transactions and single statements, and when one may be run again.

Owns: `_tx` (one SQLAlchemy transaction, SQLite or PostgreSQL, durable or
not, with a post-commit wake-up on request), `_statement` (PostgreSQL: a
pooled driver connection for one self-committing statement, the hot path's SQL
functions), the `_Retryable` signal and `_retry_once`, which runs a public
store method a second time after a rollback it can prove. Must not: know any
table or business rule; decide what a concern's error means to a caller (each
concern maps its own).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

import psycopg
from sqlalchemy import Engine
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, OperationalError

from services.common.errors import ServiceUnavailable
from services.jobs.db import WRITE_OPTION

log = logging.getLogger(__name__)

# PostgreSQL SQLSTATEs for which the whole transaction may simply be run again.
_RETRYABLE_SQLSTATES = {"40001", "40P01"}

# The server ended the session: admin_shutdown (pg_terminate_backend, a fast
# shutdown), crash_shutdown, cannot_connect_now.
_TERMINATED_SQLSTATES = {"57P01", "57P02", "57P03"}

# Set in a connection's info by a body whose commit should wake idle workers (SQLite:
# StoreBase._notify); read and cleared by `_tx` after the commit.
RING_AFTER_COMMIT = "lightbox_ring_after_commit"


class _Retryable(Exception):
    """The transaction was rolled back by a lost connection or a deadlock: run it again."""


P = ParamSpec("P")

R = TypeVar("R")


def _retry_once(method: Callable[P, R]) -> Callable[P, R]:
    """Run a public method again after a lost connection, when that is safe.

    `_tx` raises `_Retryable` only when the transaction cannot have committed,
    so running the whole method again cannot apply anything twice.
    """

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except _Retryable as first:
            log.warning("%s: %s; retrying once", method.__name__, first.__cause__)
        try:
            return method(*args, **kwargs)
        except _Retryable as second:
            raise ServiceUnavailable(
                f"The database connection failed twice: {second.__cause__}"
            ) from second.__cause__

    return wrapper


class Transactions:
    """The engines and the transaction methods every part of the store runs its
    SQL through (set up by StoreBase.__init__)."""

    _engine: Engine
    _dialect: str
    # PostgreSQL: a pool of autocommit connections for the hot path's
    # single-statement calls (see _statement); None on SQLite.
    _statements: Engine | None

    @contextmanager
    def _tx(self, *, write: bool = True, durable: bool = True) -> Iterator[Connection]:
        """One transaction; commits when the body returns.

        A connection lost (or a deadlock) before the commit is reported as
        `_Retryable`: the database rolled the transaction back. A connection
        lost during the commit is not retryable: it may have committed.

        `durable=False` (PostgreSQL) commits without waiting for the WAL
        flush. Only for changes the queue heals by itself if a server crash
        loses them: a lost claim or heartbeat leaves a lease that expires,
        and the job runs again. Money, job outcomes and webhook results are
        always durable.
        """
        body_done = False
        try:
            with self._engine.connect() as conn:
                conn.execution_options(**{WRITE_OPTION: write})
                conn.info.pop(RING_AFTER_COMMIT, None)  # left by a rolled-back body
                with conn.begin():
                    if not durable:
                        self._commit_asynchronously(conn)
                    yield conn
                    body_done = True
                if conn.info.pop(RING_AFTER_COMMIT, False):
                    self._after_commit_ring()
        except DBAPIError as exc:
            if exc.connection_invalidated or _sqlstate(exc) in _RETRYABLE_SQLSTATES:
                if body_done:
                    raise ServiceUnavailable(
                        "The database connection was lost while committing; "
                        "the change may or may not have been saved."
                    ) from exc
                raise _Retryable(str(exc.orig)) from exc
            if isinstance(exc, OperationalError):
                raise ServiceUnavailable(f"The database is unavailable: {exc.orig}") from exc
            raise

    def _after_commit_ring(self) -> None:
        """SQLite: wake idle workers after a commit that made work runnable (the
        store's doorbell, queue/doorbell.py); StoreBase provides it."""

    @contextmanager
    def _statement(self, *, retry_safe: bool) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection's psycopg connection for one statement that is
        its own transaction (PostgreSQL's implicit transaction: no BEGIN and
        COMMIT round trips). The queue's hot path talks to the driver directly:
        there SQLAlchemy's statement layer (compiling, binding, result
        processing) cost more CPU than the database spent on the statement.

        The statement and its commit are one step, so a connection lost during
        it leaves the outcome unknown: `_Retryable` only if `retry_safe`
        (running it again cannot do harm), otherwise ServiceUnavailable. An
        aborted statement (deadlock, serialisation failure) did nothing and is
        always retryable, and so is a session the server terminated (it holds
        interrupts while committing: a statement it cut short did not commit).
        """
        assert self._statements is not None, "PostgreSQL only"
        try:
            pooled = self._statements.raw_connection()
        except DBAPIError as exc:
            raise ServiceUnavailable(f"The database is unavailable: {exc.orig}") from exc
        driver = pooled.driver_connection
        try:
            try:
                yield driver
            except psycopg.Error as exc:
                lost = driver.broken or driver.closed
                if lost:
                    pooled.invalidate(exc)
                if exc.sqlstate in _RETRYABLE_SQLSTATES | _TERMINATED_SQLSTATES or (
                    lost and retry_safe
                ):
                    raise _Retryable(str(exc)) from exc
                if lost:
                    raise ServiceUnavailable(
                        "The database connection was lost while committing; "
                        "the change may or may not have been saved."
                    ) from exc
                if isinstance(exc, psycopg.OperationalError):
                    raise ServiceUnavailable(f"The database is unavailable: {exc}") from exc
                raise
        finally:
            pooled.close()

    def _commit_asynchronously(self, conn: Connection) -> None:
        """See `_tx(durable=False)`; from within the transaction."""
        if self._dialect == "postgresql":
            conn.exec_driver_sql("SET LOCAL synchronous_commit = off")


def _sqlstate(exc: DBAPIError) -> str | None:
    return getattr(exc.orig, "sqlstate", None)
