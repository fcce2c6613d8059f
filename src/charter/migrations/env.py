"""Alembic environment: runs against the engine handed over in `config.attributes`."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from charter.tables import metadata

config = context.config
engine = config.attributes.get("engine")
if not isinstance(engine, Engine):  # pragma: no cover - always set by charter.migrations
    raise RuntimeError("charter migrations run through charter.migrations.upgrade(engine)")

with engine.connect() as connection:
    # One transaction for the whole upgrade, on SQLite too (Alembic's SQLite default commits
    # after each migration). A failed upgrade then leaves the schema where it was, and on SQLite
    # the write lock is held from reading the current revision to the last migration, so a
    # second process starting at the same moment cannot run a migration a first one has done.
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=True,
        compare_type=True,
        transactional_ddl=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
