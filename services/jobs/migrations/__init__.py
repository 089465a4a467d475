"""Alembic migrations of the jobs database (no alembic.ini: configured here)."""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent


def alembic_config(database_url: str | None = None) -> Config:
    """An Alembic config for this folder; pass it to `alembic.command` functions.

    For a new migration: `command.revision(alembic_config(url), "what changed",
    autogenerate=True)` against a database already at head.
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if database_url:
        config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config
