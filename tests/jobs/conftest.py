"""Fixtures for the jobs store: every store test runs on SQLite and on PostgreSQL.

PostgreSQL: a fresh database `lightbox_test_<random>` is created on the server at
LIGHTBOX_TEST_PG (the suite-wide setting; default postgres@127.0.0.1:5432) once per
session, migrated, emptied before each test and dropped at the end. Without a
reachable server the PostgreSQL cases are skipped, except under CI=true, where
they fail. Fixture names are prefixed `store_pg_` so that they do not shadow the
suite-wide PostgreSQL fixtures of tests/conftest.py.
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from sqlalchemy.engine import make_url

from services.jobs.store import JobStore

PG_SERVER_URL = os.environ.get("LIGHTBOX_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
_TABLES = "idempotency_keys, ledger, jobs, api_keys, accounts"


class FakeClock:
    """A settable UTC clock for JobStore(clock=...): leases and back-offs expire
    when a test says so, not after real sleeps."""

    def __init__(self) -> None:
        self._now = datetime.now(UTC)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += timedelta(seconds=seconds)


def _libpq_url(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _with_database(url: str, database: str) -> str:
    return (
        make_url(url)
        .set(drivername="postgresql+psycopg", database=database)
        .render_as_string(hide_password=False)
    )


@pytest.fixture(scope="session")
def store_pg_server_url() -> str:
    """The PostgreSQL server's maintenance-database URL, or skip (fail under CI)."""
    try:
        psycopg.connect(_libpq_url(PG_SERVER_URL), connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        message = f"PostgreSQL not reachable at {make_url(PG_SERVER_URL)!r}: {exc}"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{message} (CI is set: the PostgreSQL tests must run)")
        pytest.skip(f"{message}; set LIGHTBOX_TEST_PG to run the PostgreSQL cases")
    return PG_SERVER_URL


@pytest.fixture(scope="session")
def store_pg_database_factory(store_pg_server_url: str) -> Iterator[Callable[[], str]]:
    """Creates empty databases on demand; drops every one at the end of the session."""
    created: list[str] = []

    def create() -> str:
        name = f"lightbox_test_{secrets.token_hex(6)}"
        with psycopg.connect(_libpq_url(store_pg_server_url), autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        created.append(name)
        return _with_database(store_pg_server_url, name)

    yield create
    with psycopg.connect(_libpq_url(store_pg_server_url), autocommit=True) as admin:
        for name in created:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def store_pg_database_url(store_pg_database_factory: Callable[[], str]) -> str:
    """The session's migrated PostgreSQL database."""
    url = store_pg_database_factory()
    store = JobStore(url)
    store.migrate()
    store.close()
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated, empty database of each backend."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('jobsdb') / 'jobs.db'}"
        store = JobStore(url)
        store.migrate()
        store.close()
        return url
    url: str = request.getfixturevalue("store_pg_url")
    return url


@pytest.fixture
def store_pg_url(store_pg_database_url: str) -> str:
    """The session's PostgreSQL database, emptied for this test."""
    with psycopg.connect(_libpq_url(store_pg_database_url), autocommit=True) as conn:
        conn.execute(f"TRUNCATE {_TABLES} RESTART IDENTITY CASCADE")
    return store_pg_database_url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A database of each backend with no schema at all."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('emptydb') / 'jobs.db'}"
    factory: Callable[[], str] = request.getfixturevalue("store_pg_database_factory")
    return factory()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(db_url: str, clock: FakeClock) -> Iterator[JobStore]:
    job_store = JobStore(db_url, clock=clock)
    yield job_store
    job_store.close()
