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
from tests.conftest import BACKEND, POSTGRES_URL
from tests.vault.calls import sign_up

pytestmark = pytest.mark.skipif(
    BACKEND != "postgres", reason="SQLite has no server to drop a connection"
)


def drop_charters_connections(db: Database) -> int:
    """What a restart of PostgreSQL does to Charter: every connection in its pool is cut (from
    a connection of another engine, so that nothing else the tests hold is touched)."""
    pooled = list(db.engine.pool._pool.queue)  # type: ignore[attr-defined]  # QueuePool's own
    pids = [record.dbapi_connection.info.backend_pid for record in pooled]
    admin = sa.create_engine(POSTGRES_URL, poolclass=NullPool)
    try:
        with admin.connect() as connection:
            cut = sum(
                bool(
                    connection.execute(
                        # Waits (up to 10 s) until the backend has exited, as after a restart.
                        text("SELECT pg_terminate_backend(:pid, 10000)"),
                        {"pid": pid},
                    ).scalar()
                )
                for pid in pids
            )
    finally:
        admin.dispose()
    return cut


def test_a_dropped_connection_costs_no_request(
    client: TestClient, make_key: Callable[[str], str], db: Database
) -> None:
    headers = {"Authorization": f"Bearer {make_key('service_client')}"}
    person = sign_up(client, headers, "visitor-dropped", "ines@example.com")

    assert drop_charters_connections(db) >= 1
    saved = client.put(
        f"/v1/people/{person}/choices",
        headers=headers,
        json={"choices": {"purpose:promotional": False}},
    )
    read = client.get(f"/v1/people/{person}/choices", headers=headers)

    assert saved.status_code == 200, saved.text
    assert read.status_code == 200, read.text
    assert read.json()["current"]["purpose:promotional"] is False
