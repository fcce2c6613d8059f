"""Throwaway databases for in-process benchmarks: a SQLite file in a temporary CHARTER_HOME,
or a database of our own on the local PostgreSQL, each migrated to Charter's schema and
removed when its `with` block ends."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from charter.boot import open_database
from charter.db import Database, DatabaseUnavailable
from charter.settings import Settings

POSTGRES_ADMIN_URL = os.environ.get(
    "CHARTER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@contextlib.contextmanager
def temporary_sqlite() -> Iterator[tuple[Database, Path]]:
    """A migrated SQLite database in a temporary CHARTER_HOME, and the path of its file."""
    home = Path(tempfile.mkdtemp(prefix="charter-bench-"))
    try:
        settings = Settings.from_env({"CHARTER_HOME": str(home)})
        db = open_database(settings)
        try:
            yield db, home / "charter.db"
        finally:
            db.dispose()
    finally:
        shutil.rmtree(home, ignore_errors=True)


@contextlib.contextmanager
def empty_postgres() -> Iterator[str]:
    """The URL of an empty database of our own on the local PostgreSQL, dropped afterwards.

    Raises `DatabaseUnavailable` if the server does not answer.
    """
    admin = make_url(POSTGRES_ADMIN_URL)
    name = f"charter_bench_{os.getpid()}"
    admin_dsn = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        control = psycopg.connect(admin_dsn, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(str(exc).strip().splitlines()[0]) from None
    with control:
        control.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        control.execute(f'CREATE DATABASE "{name}"')
        try:
            yield admin.set(database=name).render_as_string(hide_password=False)
        finally:
            control.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def temporary_postgres() -> Iterator[Database]:
    """A migrated database of our own on the local PostgreSQL, dropped afterwards.

    Raises `DatabaseUnavailable` if the server does not answer.
    """
    with empty_postgres() as url:
        home = Path(tempfile.mkdtemp(prefix="charter-bench-"))
        try:
            db = open_database(
                Settings.from_env({"CHARTER_HOME": str(home), "CHARTER_DATABASE_URL": url})
            )
            try:
                yield db
            finally:
                db.dispose()
        finally:
            shutil.rmtree(home, ignore_errors=True)
