"""`Database.quick_reading`, the read the event loop does itself (a key check on SQLite):
it never waits for the connection pool, and each read sees what was committed before it."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import text

from charter.db import Database, make_engine


@pytest.fixture
def small_pool(database_url_factory: Callable[[], str]) -> Iterator[Database]:
    """A database whose pool holds one connection and gives up waiting after half a second."""
    engine = make_engine(database_url_factory(), pool_size=1, max_overflow=0, pool_timeout=0.5)
    database = Database(engine)
    with database.writing() as session:
        session.execute(text("CREATE TABLE counted (n INTEGER)"))
        session.execute(text("INSERT INTO counted VALUES (1)"))
    yield database
    database.dispose()


def count(database: Database) -> int:
    with database.quick_reading() as session:
        return int(session.execute(text("SELECT COUNT(*) FROM counted")).scalar_one())


def test_a_quick_read_does_not_wait_for_the_pool_that_threads_hold(small_pool: Database) -> None:
    with small_pool.reading() as held:  # the pool's one connection, as a busy thread holds it
        held.execute(text("SELECT 1"))
        assert count(small_pool) == 1


def test_each_quick_read_sees_what_was_committed_before_it(small_pool: Database) -> None:
    assert count(small_pool) == 1
    with small_pool.writing() as session:
        session.execute(text("INSERT INTO counted VALUES (2)"))
    assert count(small_pool) == 2
