"""PostgreSQL restarted under a running Charter (issue 15): its pool holds no ping before each
use, so a connection the server dropped fails its first statement. No request a client sends
afterwards may get a 500 for it; the key check reads again on a new connection, and the
requests after it find a pool of new connections."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.pool import NullPool

from charter.db import Database
from tests.conftest import BACKEND
from tests.vault.calls import sign_up

pytestmark = pytest.mark.skipif(
    BACKEND != "postgres", reason="SQLite has no server to drop a connection"
)


def drop_charters_connections(db: Database) -> int:
    """What a restart of PostgreSQL does to Charter: every connection to its database is cut,
    those of the thread pool's engine, the event loop's units of work and its key checks alike
    (from a connection of another engine, which stays)."""
    admin = sa.create_engine(db.engine.url, poolclass=NullPool)
    try:
        with admin.connect() as connection:
            return int(
                connection.execute(
                    # Waits (up to 10 s) until each backend has exited, as after a restart.
                    text(
                        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 10000)) "
                        "FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                ).scalar_one()
            )
    finally:
        admin.dispose()


def test_a_dropped_connection_costs_no_request(
    client: TestClient, make_key: Callable[[str], str], db: Database
) -> None:
    headers = {"Authorization": f"Bearer {make_key('service_client')}"}
    person = sign_up(client, headers, "visitor-dropped", "ines@example.com")
    choices = f"/v1/people/{person}/choices"
    before = client.put(choices, headers=headers, json={"choices": {"purpose:surveys": False}})
    assert before.status_code == 200, before.text

    # The thread pool's connection (the sign-up), the key check's and the save's on the loop.
    assert drop_charters_connections(db) >= 3
    saved = client.put(choices, headers=headers, json={"choices": {"purpose:promotional": False}})
    read = client.get(choices, headers=headers)

    assert saved.status_code == 200, saved.text
    assert read.status_code == 200, read.text
    assert read.json()["current"]["purpose:promotional"] is False
