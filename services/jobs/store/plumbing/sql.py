"""Small SQL and row helpers shared by the store's concerns.

Owns: new ids, ISO timestamps and UTC normalisation, the status-literal
predicate the partial indexes need, INSERT ... ON CONFLICT DO NOTHING for both
dialects, and the psycopg row factory the PostgreSQL hot path reads rows with.
Must not: run a statement or hold a connection; know a business rule.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import psycopg
from sqlalchemy import literal_column
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from services.jobs.models import JOB_STATUSES


def _new_id() -> str:
    # 128 random bits; hex keeps ids safe in URLs, paths and shell arguments.
    return secrets.token_hex(16)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _as_utc(moment: datetime | str) -> datetime:
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _status_is(table: Any, status: str) -> Any:
    """`table.status = '<status>'` with the status as a literal, not a bound
    parameter: the partial indexes of 0004 are conditioned on it, and the
    generic plan PostgreSQL settles on for a statement prepared and run many
    times cannot see a bound value, so it could not use them. (SQLite looks at
    bound values when it chooses.)"""
    assert status in JOB_STATUSES
    return table.c.status == literal_column(f"'{status}'")


def _insert_ignoring_conflicts(dialect: str, table: Any) -> Any:
    if dialect == "postgresql":
        return pg_insert(table).on_conflict_do_nothing()
    return sqlite_insert(table).on_conflict_do_nothing()


def _utc_row(cursor: psycopg.Cursor[Any]) -> Callable[[Sequence[Any]], SimpleNamespace]:
    """Row factory: attribute access like SQLAlchemy's rows, datetimes in UTC
    as UTCDateTime gives them (the driver uses the session's time zone)."""
    result = cursor.pgresult
    names = _column_names(
        tuple(result.fname(i) or b"" for i in range(result.nfields)) if result else ()
    )

    def make(values: Sequence[Any]) -> SimpleNamespace:
        return SimpleNamespace(
            **{
                name: value.astimezone(UTC) if isinstance(value, datetime) else value
                for name, value in zip(names, values, strict=True)
            }
        )

    return make


@functools.lru_cache(maxsize=16)
def _column_names(raw: tuple[bytes, ...]) -> tuple[str, ...]:
    # cursor.description would build a Column object per column per query.
    return tuple(name.decode() for name in raw)
