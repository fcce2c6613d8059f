"""Fixtures shared by the whole suite."""

from __future__ import annotations

import datetime as dt
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from charter import migrations
from charter.clock import FixedClock
from charter.db import Database, make_engine
from charter.policy.compiled import CompiledPolicy, compile_policy
from charter.policy.loader import load_policy
from charter.policy.schema import Policy
from charter.settings import Settings
from charter.staff.service import add_staff, create_key
from charter.tables import metadata
from charter.vault.crypto import new_key
from charter.vault.keystore import SqlKeyStore
from charter.web.app import create_app

# Fixtures for tests that run `charter serve` as its own process.
pytest_plugins = ["tests.serving"]

ROOT = Path(__file__).resolve().parents[1]
OMNI_YAML = ROOT / "policies" / "omni.yaml"
PUBLISHED_TEXT = ROOT / "policies" / "omni-privacy-policy.txt"


@pytest.fixture(scope="session")
def omni_policy() -> Policy:
    return load_policy(OMNI_YAML)


@pytest.fixture(scope="session")
def omni_compiled(omni_policy: Policy) -> CompiledPolicy:
    return compile_policy(omni_policy)


@pytest.fixture(scope="session")
def omni_text() -> str:
    return OMNI_YAML.read_text(encoding="utf-8")


# --- Databases -------------------------------------------------------------------------------
# `make test` runs the suite twice: CHARTER_TEST_DATABASE=sqlite, then =postgres. Each test
# session gets a fresh database of its own. Each test runs the production transaction path
# (the write lock and `quick_reading` included) on committed data, emptied at its end.

BACKEND = os.environ.get("CHARTER_TEST_DATABASE", "sqlite")
POSTGRES_URL = os.environ.get(
    "CHARTER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _fresh_postgres_database(name: str) -> str:
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    return sa.make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)


def _drop_postgres_database(name: str) -> None:
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture(scope="session")
def database_url_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[], str]]:
    """Makes empty databases of the backend under test; all are removed at the end."""
    made: list[str] = []

    def make() -> str:
        if BACKEND == "postgres":
            name = f"charter_test_{os.getpid()}_{len(made)}_{secrets.token_hex(3)}"
            made.append(name)
            return _fresh_postgres_database(name)
        if BACKEND != "sqlite":
            raise RuntimeError(f"CHARTER_TEST_DATABASE must be sqlite or postgres, not {BACKEND}")
        return f"sqlite:///{tmp_path_factory.mktemp('db') / 'charter.db'}"

    yield make
    for name in made:
        _drop_postgres_database(name)


@pytest.fixture(scope="session")
def migrated_url(database_url_factory: Callable[[], str]) -> str:
    """One migrated database for the tests that share it (see `db`)."""
    url = database_url_factory()
    engine = make_engine(url)
    migrations.upgrade(engine)
    engine.dispose()
    return url


@pytest.fixture(scope="session")
def migrated_engine(migrated_url: str) -> Iterator[sa.Engine]:
    engine = make_engine(migrated_url)
    yield engine
    engine.dispose()


def _empty_every_table(engine: sa.Engine) -> None:
    names = [table.name for table in reversed(metadata.sorted_tables)]
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            quoted = ", ".join(f'"{name}"' for name in names)
            connection.exec_driver_sql("SET LOCAL lock_timeout = '10s'")
            connection.exec_driver_sql(f"TRUNCATE {quoted} RESTART IDENTITY")
        else:
            for name in names:
                connection.exec_driver_sql(f'DELETE FROM "{name}"')  # noqa: S608 - our tables


@pytest.fixture
def db(migrated_url: str, migrated_engine: sa.Engine) -> Iterator[Database]:
    """The Database as production opens it, on the session's migrated database: every unit of
    work really commits (SQLite's write lock and `quick_reading` included). The tables are
    emptied when the test ends, so each test starts from an empty database."""
    database = Database.connect(migrated_url)
    yield database
    database.dispose()
    _empty_every_table(migrated_engine)


@pytest.fixture
def committed_db(database_url_factory: Callable[[], str]) -> Iterator[Database]:
    """A fresh, migrated database whose writes really commit (for multi-process tests)."""
    url = database_url_factory()
    database = Database.connect(url)
    migrations.upgrade(database.engine)
    database.url = url  # type: ignore[attr-defined]  # tests hand the URL to subprocesses
    yield database
    database.dispose()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.from_env({"CHARTER_HOME": str(tmp_path / "home")})


@pytest.fixture(scope="session")
def master() -> bytes:
    return new_key()


@pytest.fixture(scope="session")
def keys(database_url_factory: Callable[[], str], master: bytes) -> Iterator[SqlKeyStore]:
    """The real key store, in a database of its own (apart from the data, as in production)."""
    store = SqlKeyStore(make_engine(database_url_factory()), master)
    yield store
    store.engine.dispose()


@pytest.fixture
def app(
    settings: Settings,
    omni_compiled: CompiledPolicy,
    db: Database,
    keys: SqlKeyStore,
    clock: FixedClock,
) -> FastAPI:
    return create_app(settings, omni_compiled, db, keys, clock=clock)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def make_key(
    db: Database, clock: FixedClock, omni_compiled: CompiledPolicy
) -> Callable[[str], str]:
    """`make_key(role)` adds a staff member with that role and returns a fresh API key."""
    counter = iter(range(1_000_000))

    def make(role: str, *, name: str | None = None) -> str:
        handle = name or f"{role.replace('_', '-')}-{next(counter)}"
        with db.writing() as session:
            add_staff(session, clock, omni_compiled, actor="test", name=handle, role=role)
            return create_key(session, clock, actor="test", staff_name=handle).key

    return make


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
