"""For the tests that kill a real Charter process at a step of its work: hold the process at
that step with a lock on the real database, see that it is there, and read what it left."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterator
from typing import Any

import sqlalchemy as sa

from charter.db import make_engine


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.02)  # polling for the process to reach a step, not measuring


def on_postgres(url: str) -> bool:
    return sa.make_url(url).get_backend_name() == "postgresql"


@contextlib.contextmanager
def holding_writes(url: str, table: str, *, mode: str = "SHARE") -> Iterator[None]:
    """Hold a lock that makes a process wait before it writes `table` of the database at
    `url`: SQLite's one write lock, or a PostgreSQL table lock in `mode` (SHARE lets readers
    and `SELECT ... FOR UPDATE` on; EXCLUSIVE lets plain readers only)."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        writer = sqlite3.connect(str(parsed.database), isolation_level=None)
        writer.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            writer.execute("ROLLBACK")
            writer.close()
        return
    engine = make_engine(url)
    try:
        with engine.connect() as connection, connection.begin():
            connection.exec_driver_sql(f'LOCK TABLE "{table}" IN {mode} MODE')
            yield
    finally:
        engine.dispose()


def waiting_for_locks(url: str) -> int:
    """How many other sessions of the PostgreSQL database at `url` wait for a lock."""
    sql = (
        "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'"
    )
    return int(str(scalar(url, sql)))


def rows(url: str, sql: str, **params: object) -> list[sa.Row[Any]]:
    """The rows `sql` reads from the database at `url`, on a connection of its own."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return list(connection.execute(sa.text(sql), params).all())
    finally:
        engine.dispose()


def scalar(url: str, sql: str, **params: object) -> object:
    found = rows(url, sql, **params)
    return found[0][0] if found else None
