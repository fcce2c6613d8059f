"""Alembic migrations, applied by `charter init` and when the service starts.

Alembic itself (about 10 MB a process) is loaded only when there is something to migrate: a
server starting on an up-to-date database reads the revision with one query and goes on.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import DBAPIError

from charter.db import failure_reason, safe_url

if TYPE_CHECKING:
    from alembic.config import Config

HERE = Path(__file__).resolve().parent
# The newest migration in versions/; a new migration moves it (a test holds the two together).
HEAD = "0009"
# Key of the PostgreSQL advisory lock taken while migrating ("charter" in ASCII).
_MIGRATION_LOCK = 0x63686172746572
# Where Alembic keeps the revision a database is at.
_VERSION_TABLE = "alembic_version"
_READ_VERSION = text("SELECT version_num FROM alembic_version")


def alembic_config(engine: Engine) -> Config:
    from alembic.config import Config  # noqa: PLC0415 - see the module's docstring

    config = Config()
    config.set_main_option("script_location", str(HERE))
    config.attributes["engine"] = engine
    return config


def head_revision(engine: Engine) -> str | None:
    """The newest revision Alembic finds in versions/ (`HEAD` names it without Alembic)."""
    from alembic.script import ScriptDirectory  # noqa: PLC0415 - see the module's docstring

    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at; None for a database never migrated."""
    with engine.connect() as connection:
        if not inspect(connection).has_table(_VERSION_TABLE):
            return None
        return connection.execute(_READ_VERSION).scalar()


class MigrationFailed(Exception):
    """The schema cannot be brought up to date; the message says why in one line."""


def upgrade(engine: Engine) -> bool:
    """Bring the schema up to the newest migration; True if anything was applied.

    Several processes may start on one new database at once; one migrates, the others wait
    for it and then find nothing left to do.
    """
    try:
        if current_revision(engine) == HEAD:
            return False
        with _migrating(engine) as migrating_engine:
            if current_revision(engine) == HEAD:
                return False
            _alembic_upgrade(migrating_engine)
    except DBAPIError as exc:
        url = engine.url.render_as_string(hide_password=False)
        raise MigrationFailed(
            f"cannot bring {safe_url(url)} up to date: {failure_reason(exc, url)}"
        ) from None
    return True


def _alembic_upgrade(engine: Engine) -> None:
    from alembic import command  # noqa: PLC0415 - see the module's docstring
    from alembic.util import CommandError  # noqa: PLC0415

    try:
        command.upgrade(alembic_config(engine), "head")
    except CommandError as exc:
        # E.g. the database was migrated by a newer Charter than this one.
        shown = engine.url.render_as_string(hide_password=True)
        raise MigrationFailed(f"cannot bring {shown} up to date: {exc}") from None


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
