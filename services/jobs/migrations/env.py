"""Alembic environment for the jobs database.

Migrations run programmatically (`JobStore.migrate`, or `alembic_config()` in
`services/jobs/migrations/__init__.py` for `alembic revision --autogenerate`),
which hands over an open connection in `config.attributes["connection"]`.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from services.jobs.db import make_engine
from services.jobs.models import metadata

# Any constant works; it only has to be the same in every process that migrates.
_MIGRATION_LOCK_ID = 0x4C42_4D49_4752


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things in place; batch mode rebuilds tables.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # The jobs API and every worker migrate at start-up; the lock makes
            # the others wait and then find the schema already at head.
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID}
            )
        context.run_migrations()


config = context.config
connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as conn:
        _run(conn)
        conn.commit()
    engine.dispose()
