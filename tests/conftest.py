"""Fixtures shared across the suite: free ports, PostgreSQL scratch databases and
the whole local stack (real tritonserver, real gRPC services, real gateway)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.common.ports import free_port_block  # noqa: F401  (re-exported for tests)

REPO = Path(__file__).resolve().parents[1]
PG_ADMIN_URL = os.environ.get("LIGHTBOX_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
# pymatting's numba kernels, compiled once per checkout and reused by every stack.
NUMBA_CACHE = REPO / ".lightbox" / "numba_cache"


def pg_available() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def pg_database_factory() -> Iterator[object]:
    """Makes scratch PostgreSQL databases; drops them all at the end of the session."""
    import psycopg

    if not pg_available():
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required in CI but {PG_ADMIN_URL} is unreachable")
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}")
    made: list[str] = []

    def make(prefix: str = "lightbox_test") -> str:
        name = f"{prefix}_{secrets.token_hex(4)}"
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        made.append(name)
        return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"

    yield make
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        for name in made:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
