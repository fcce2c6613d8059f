"""A bulk disclosure survives a crash of the server mid-request (C21): the real server is
killed with SIGKILL while it decides and records 10,000 people, and started again on the
same database.

After the restart the ledger holds the disclosure whole (its row, its audit entry and one
ledger row per person disclosed) or not at all; a retry with the same idempotency key then
records it exactly once, and a second retry gets that same disclosure back."""

from __future__ import annotations

import contextlib
import json
import select
import socket
import sqlite3
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from charter.clock import SystemClock
from charter.db import Database
from charter.vault.people import new_person
from tests.serving import Server, charter

pytestmark = [pytest.mark.slow, pytest.mark.clause("C21")]

PEOPLE = 10_000
# A processor on OMNI's instructions: every user is allowed, so all 10,000 are recorded.
TO_PROCESSOR = {
    "recipient": "cloud_hosting",
    "purpose": "service_support",
    "categories": ["contact.email"],
}
# Attempts at killing the server before it answers; each one the server outruns is retried
# with a new key and a shorter wait.
ATTEMPTS = 4


def poll(condition: Callable[[], bool], what: str, *, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.002)  # polling for the server to reach a step, not measuring


def writing_now(url: str) -> bool:
    """Whether another process is inside a disclosure's write transaction of the database at
    `url`: SQLite's write lock is taken (a writer holds it from BEGIN IMMEDIATE to the end), or
    a PostgreSQL backend holds the locks of its work (the people read FOR SHARE, the ledger
    written) until it commits or rolls back."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        probe = sqlite3.connect(str(parsed.database), timeout=0, isolation_level=None)
        try:
            probe.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc):
                raise
            return True
        finally:
            with contextlib.suppress(sqlite3.Error):
                probe.execute("ROLLBACK")
            probe.close()
        return False
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            held = connection.exec_driver_sql(
                "SELECT COUNT(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                "WHERE l.pid <> pg_backend_pid() AND l.database = "
                "(SELECT oid FROM pg_database WHERE datname = current_database()) AND ("
                "(c.relname = 'people' AND l.mode = 'RowShareLock') OR "
                "(c.relname IN ('disclosures', 'disclosed_people') "
                "AND l.mode = 'RowExclusiveLock'))"
            ).scalar()
        return bool(held)
    finally:
        engine.dispose()


def ledger(db: Database) -> dict[str, Any]:
    """Each disclosure's key, its `disclosed` and its ledger rows; ledger rows of no
    disclosure; and the disclosures the audit log records."""
    with db.reading() as session:
        connection = session.connection()
        rows = connection.exec_driver_sql(
            "SELECT d.idempotency_key, d.id, d.disclosed, "
            "(SELECT COUNT(*) FROM disclosed_people p WHERE p.disclosure_id = d.id) "
            "FROM disclosures d"
        ).all()
        orphans = connection.exec_driver_sql(
            "SELECT COUNT(*) FROM disclosed_people p WHERE NOT EXISTS "
            "(SELECT 1 FROM disclosures d WHERE d.id = p.disclosure_id)"
        ).scalar()
        audited = connection.exec_driver_sql(
            "SELECT target FROM audit_entries WHERE action = 'disclosures:disclosure:recorded'"
        ).all()
    return {
        "disclosures": {
            key: (id_, int(disclosed), int(people)) for key, id_, disclosed, people in rows
        },
        "orphans": int(orphans or 0),
        "audited": sorted(str(target) for (target,) in audited),
    }


def assert_whole_or_nothing(db: Database) -> dict[str, tuple[int, int, int]]:
    """Every disclosure the ledger holds is whole and audited once; no ledger row is left
    of one that is not there. The disclosures, by key."""
    found = ledger(db)
    made: dict[str, tuple[int, int, int]] = found["disclosures"]
    for key, (_, disclosed, people) in made.items():
        assert disclosed == people == PEOPLE, key
    assert found["orphans"] == 0
    assert found["audited"] == sorted(f"disclosure:{id_}" for id_, _, _ in made.values())
    return made


def request_bytes(base: str, officer: dict[str, str], body: bytes) -> bytes:
    host = base.removeprefix("http://")
    head = (
        f"POST /v1/disclosures HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: {officer['Authorization']}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


@contextlib.contextmanager
def sent(base: str, request: bytes) -> Iterator[socket.socket]:
    """A connection that has sent the whole of `request`, closed afterwards."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=60) as connection:
        connection.sendall(request)
        yield connection


def answered(connection: socket.socket) -> bool:
    """Whether the server has begun to answer on `connection` (or closed it)."""
    readable, _, _ = select.select([connection], [], [], 0)
    return bool(readable)


def wait_until_writing(url: str, connection: socket.socket) -> None:
    """Until the server is inside the disclosure's write transaction (or has answered)."""
    poll(lambda: writing_now(url) or answered(connection), "the server writes the disclosure")


def test_a_disclosure_killed_mid_request_is_whole_or_absent_and_a_retry_records_it_once(
    environment: dict[str, str], server: Callable[[], Server], committed_db: Database
) -> None:
    charter(environment, "init")
    charter(environment, "staff", "add", "olivia", "--role", "privacy_officer")
    key = json.loads(charter(environment, "keys", "create", "--staff", "olivia", "--json"))
    officer = {"Authorization": f"Bearer {key['key']}"}
    with committed_db.writing() as session:
        people = [new_person(session, SystemClock(), "user").id for _ in range(PEOPLE)]
    url = environment["CHARTER_DATABASE_URL"]
    running = server()

    def body(idempotency_key: str) -> dict[str, Any]:
        return {**TO_PROCESSOR, "people": people, "idempotency_key": idempotency_key}

    # How long the whole request takes, for how long to wait before the kill.
    started = time.monotonic()
    first = httpx.post(
        f"{running.base}/v1/disclosures", headers=officer, json=body("warm-up"), timeout=60
    )
    took = time.monotonic() - started
    assert first.status_code == 201, first.text
    assert first.json()["disclosed"] == PEOPLE

    killed = None
    wait = took / 4
    for attempt in range(ATTEMPTS):
        crash_key = f"crash-{attempt}"
        request = request_bytes(running.base, officer, json.dumps(body(crash_key)).encode())
        with sent(running.base, request) as connection:
            wait_until_writing(url, connection)
            time.sleep(wait)  # into the middle of deciding and recording the people
            if not answered(connection):
                running.kill()
                killed = crash_key
                break
        # The server answered first: the disclosure is recorded; try again, sooner.
        wait /= 2
    assert killed is not None, f"the server answered {ATTEMPTS} times before it was killed"
    # PostgreSQL rolls back the killed server's transaction when it notices it is gone.
    poll(lambda: not writing_now(url), "the killed server's transaction is over")

    restarted = server()

    before = assert_whole_or_nothing(committed_db)
    recorded_whole = killed in before
    retried = httpx.post(
        f"{restarted.base}/v1/disclosures", headers=officer, json=body(killed), timeout=60
    )
    assert retried.status_code == 201, retried.text
    answer = retried.json()
    assert answer["replayed"] is recorded_whole
    assert (answer["requested"], answer["disclosed"], answer["excluded"]) == (PEOPLE, PEOPLE, 0)
    if recorded_whole:
        assert answer["disclosure_id"] == before[killed][0]
    after = assert_whole_or_nothing(committed_db)
    assert after[killed][0] == answer["disclosure_id"]
    assert set(after) == {*before, killed}

    again = httpx.post(
        f"{restarted.base}/v1/disclosures", headers=officer, json=body(killed), timeout=60
    )
    assert again.status_code == 201, again.text
    assert again.json() == {**answer, "replayed": True}
    assert assert_whole_or_nothing(committed_db) == after
