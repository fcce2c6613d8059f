"""Alembic migrations, applied by `charter init` and when the service starts."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from charter.db import failure_reason, safe_url

HERE = Path(__file__).resolve().parent
# Key of the PostgreSQL advisory lock taken while migrating ("charter" in ASCII).
_MIGRATION_LOCK = 0x63686172746572


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(HERE))
    config.attributes["engine"] = engine
    return config


def head_revision(engine: Engine) -> str | None:
    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


class MigrationFailed(Exception):
    """The schema cannot be brought up to date; the message says why in one line."""


def upgrade(engine: Engine) -> bool:
    """Bring the schema up to the newest migration; True if anything was applied.

    Several processes may start on one new database at once; one migrates, the others wait
    for it and then find nothing left to do.
    """
    try:
        if current_revision(engine) == head_revision(engine):
            return False
        with _migrating(engine) as migrating_engine:
            if current_revision(engine) == head_revision(engine):
                return False
            command.upgrade(alembic_config(migrating_engine), "head")
    except DBAPIError as exc:
        url = engine.url.render_as_string(hide_password=False)
        raise MigrationFailed(
            f"cannot bring {safe_url(url)} up to date: {failure_reason(exc, url)}"
        ) from None
    except CommandError as exc:
        # E.g. the database was migrated by a newer Charter than this one.
        shown = engine.url.render_as_string(hide_password=True)
        raise MigrationFailed(f"cannot bring {shown} up to date: {exc}") from None
    return True


@contextlib.contextmanager
def _migrating(engine: Engine) -> Iterator[Engine]:
    """Hold the database's migration lock; yield the engine to migrate through."""
    if engine.dialect.name == "sqlite":
        # The migration's transaction begins IMMEDIATE (charter.db), so it waits for another
        # process's migration to commit instead of failing with "database is locked".
        yield engine.execution_options(charter_write=True)
        return
    if engine.dialect.name != "postgresql":
        yield engine
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _MIGRATION_LOCK})
        try:
            yield engine
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _MIGRATION_LOCK})
