"""The vault: log events in through the library and over HTTP, and erasing a person.

The HTTP benchmark drives a `charter serve` subprocess through bench/client.py's few lines of
HTTP/1.1, so that the client costs as little as possible on a machine whose cores it shares
with the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.client import Api, close, exchange, expect
from bench.databases import temporary_sqlite
from bench.harness import Result, Run, benchmark, median
from bench.instance import Instance
from charter.clock import SystemClock
from charter.db import Database, bulk_insert, make_engine, utc_text
from charter.policy.compiled import CompiledPolicy, compile_policy
from charter.policy.loader import load_policy
from charter.settings import BUNDLED_POLICY
from charter.vault.crypto import Sealer, new_key
from charter.vault.erasure import erase_person
from charter.vault.events import EVENT_COLUMNS, IncomingEvent, record_events
from charter.vault.identifiers import new_person_id, new_record_ids
from charter.vault.keystore import KeyStore, SqlKeyStore
from charter.vault.people import new_person
from charter.vault.sealing import record_ad

USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36"
)
VISITORS = 1_000
# `charter serve` as a busy deployment runs it: one worker process per core (CHARTER_WORKERS).
SERVER_WORKERS = os.cpu_count() or 2
Row = tuple[object, ...]

LIBRARY_BATCH = 10_000
LIBRARY_BATCHES = 20

HTTP_BATCH = 1_000
# Three clients per worker: the kernel hands each new connection to a worker by a hash of
# its address (SO_REUSEPORT), so with a few connections one worker may get them all; with
# six both get some nearly every run, as they would from a service's many senders.
HTTP_CONNECTIONS = 6
HTTP_SECONDS = 5.0

ERASE_RECORDS = 100_000
ERASE_RUNS = 3


def _policy() -> CompiledPolicy:
    return compile_policy(load_policy(BUNDLED_POLICY))


def _visitor(number: int) -> str:
    return f"bench-visitor-{number % VISITORS:04d}"


def _library_batch(first: int, size: int) -> list[IncomingEvent]:
    start = dt.datetime(2026, 11, 25, 10, tzinfo=dt.UTC)
    return [
        IncomingEvent(
            kind="page_view",
            time=start + dt.timedelta(milliseconds=first + n),
            visitor_id=_visitor(n),
            ip=f"192.0.2.{n % 250}",
            user_agent=USER_AGENT,
            path=f"/pricing/plan-{n % 37}",
        )
        for n in range(size)
    ]


# ---------------------------------------------------------------- ingest.library


@benchmark("ingest.library")
def ingest_library(run: Run) -> Iterator[Result]:
    """Events per second through `record_events`, one committed `db.writing()` per batch of
    10,000, against a plain sqlite3 `executemany` of rows of the same shape.

    The two take turns, batch by batch, so that whatever else the machine is doing weighs on
    both alike.
    """
    policy = _policy()
    clock = SystemClock()
    total = LIBRARY_BATCH * LIBRARY_BATCHES
    library_s = anchor_s = 0.0
    with temporary_sqlite() as (db, path):
        keys = SqlKeyStore(make_engine(f"sqlite:///{path.parent / 'keys.db'}"), new_key())

        def store(batch_key: str, events: list[IncomingEvent]) -> None:
            with db.writing() as session:
                record_events(
                    session, keys, clock, policy, actor="bench", batch_key=batch_key, events=events
                )

        try:
            run.step(f"warm-up batch creating {VISITORS:,} visitors (not timed)")
            store("bench-warmup", _library_batch(0, LIBRARY_BATCH))
            people, sealed_bytes = _stored_people(path)
            batches = [
                _library_batch(LIBRARY_BATCH * (n + 1), LIBRARY_BATCH)
                for n in range(LIBRARY_BATCHES)
            ]
            run.step("preparing the sqlite3 anchor (not timed)")
            with _ExecutemanyAnchor.beside(path, people, sealed_bytes, policy.version) as anchor:
                for number, batch in enumerate(batches, start=1):
                    run.step(f"batch {number}/{LIBRARY_BATCHES}: record_events, then executemany")
                    started = time.perf_counter()
                    store(f"bench-{number:06d}", batch)
                    library_s += time.perf_counter() - started
                    anchor_s += anchor.insert_batch()
        finally:
            keys.engine.dispose()
        stored = _count(path, "events")
        if stored != total + LIBRARY_BATCH:
            raise RuntimeError(f"{stored} events stored, expected {total + LIBRARY_BATCH}")
    yield Result(
        "ingest.library",
        total / library_s,
        "events/s",
        higher_is_better=True,
        anchor="sqlite3.executemany",
        anchor_value=total / anchor_s,
        target=100_000,
        note=f"{total:,} events, {LIBRARY_BATCHES} batches of {LIBRARY_BATCH:,} over "
        f"{VISITORS:,} visitors, each batch its own committed db.writing() (WAL, "
        f"synchronous=NORMAL), sealed under a SqlKeyStore key, {sealed_bytes} B per sealed "
        f"event: {library_s:.2f} s. Anchor, batch for batch in turn: as many rows with ids "
        f"from new_record_ids into a copy of the events table and its indexes, same "
        f"PRAGMAs, committed per {LIBRARY_BATCH:,}: {anchor_s:.2f} s. Ratio target >= 0.30.",
    )


def _stored_people(path: Path) -> tuple[list[str], int]:
    """The people the stored events belong to, and the mean size of a sealed event."""
    connection = sqlite3.connect(path)
    try:
        people = [row[0] for row in connection.execute("SELECT DISTINCT person_id FROM events")]
        (mean,) = connection.execute("SELECT avg(length(sealed)) FROM events").fetchone()
    finally:
        connection.close()
    return people, round(mean)


def _count(path: Path, table: str) -> int:
    connection = sqlite3.connect(path)
    try:
        return int(connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    finally:
        connection.close()


class _ExecutemanyAnchor:
    """Plain sqlite3 inserting rows shaped like Charter's events into a fresh file holding the
    events table as Charter's migrations create it, with the PRAGMAs Charter sets."""

    def __init__(self, connection: sqlite3.Connection, batches: list[list[Row]]) -> None:
        self._connection = connection
        self._batches = batches
        self._insert = (
            f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) "
            f"VALUES ({', '.join('?' for _ in EVENT_COLUMNS)})"
        )

    @classmethod
    @contextlib.contextmanager
    def beside(
        cls, path: Path, people: list[str], sealed_bytes: int, version: str
    ) -> Iterator[_ExecutemanyAnchor]:
        """An anchor in a file next to `path`, its table copied from there, warmed up with one
        batch (not timed)."""
        source = sqlite3.connect(path)
        try:
            schema = [
                row[0]
                for row in source.execute(
                    "SELECT sql FROM sqlite_master WHERE tbl_name = 'events' AND sql IS NOT NULL "
                    "ORDER BY type DESC"
                )
            ]
        finally:
            source.close()
        at = utc_text(dt.datetime.now(dt.UTC))

        def rows() -> list[Row]:
            ids = new_record_ids(LIBRARY_BATCH)
            return [
                (
                    ids[n],
                    people[n % len(people)],
                    "page_view",
                    "log_data",
                    version,
                    at,
                    os.urandom(sealed_bytes),
                )
                for n in range(LIBRARY_BATCH)
            ]

        connection = sqlite3.connect(path.with_name("anchor.db"), isolation_level=None)
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute("PRAGMA cache_size=-32768")  # as charter.db sets them
            connection.execute("PRAGMA wal_autocheckpoint=10000")
            for statement in schema:
                connection.execute(statement)
            anchor = cls(connection, [rows() for _ in range(LIBRARY_BATCHES)])
            anchor._commit(rows())
            yield anchor
        finally:
            connection.close()

    def insert_batch(self) -> float:
        """Insert and commit the next prepared batch; the seconds it took."""
        batch = self._batches.pop()
        started = time.perf_counter()
        self._commit(batch)
        return time.perf_counter() - started

    def _commit(self, rows: list[Row]) -> None:
        self._connection.execute("BEGIN IMMEDIATE")
        self._connection.executemany(self._insert, rows)
        self._connection.execute("COMMIT")


# ---------------------------------------------------------------- HTTP, from outside


# ---------------------------------------------------------------- ingest.http


@benchmark("ingest.http")
def ingest_http(run: Run) -> Iterator[Result]:
    """Events per second acknowledged by `POST /v1/events`, batches of 1,000, from this
    process while `charter serve` runs in its own."""
    run.step("charter init")
    with Instance.temporary() as instance:
        run.step("adding a service_client and its key")
        key = instance.staff_key("bench-service", role="service_client")
        run.step("starting the server")
        with instance.serve(workers=SERVER_WORKERS) as served:
            api = Api(served.port, key)
            events = _http_events()
            run.step(f"warm-up batch creating {VISITORS:,} visitors (not timed)")
            asyncio.run(_post_batches(api, events, connections=1, duration_s=0.0, tag="w"))
            run.step(
                f"POST /v1/events x {HTTP_BATCH:,} on {HTTP_CONNECTIONS} connections "
                f"for {HTTP_SECONDS:.0f} s"
            )
            stored, batches, seconds = asyncio.run(
                _post_batches(
                    api, events, connections=HTTP_CONNECTIONS, duration_s=HTTP_SECONDS, tag="t"
                )
            )
    yield Result(
        "ingest.http",
        stored / seconds,
        "events/s",
        higher_is_better=True,
        target=30_000,
        note=f"{stored:,} events acknowledged as stored in {batches} batches of "
        f"{HTTP_BATCH:,} in {seconds:.1f} s, {HTTP_CONNECTIONS} keep-alive connections "
        f"from the benchmark process to a `charter serve` subprocess (SQLite, "
        f"CHARTER_WORKERS={SERVER_WORKERS}); client and server share the machine's cores",
    )


def _http_events() -> bytes:
    """One batch's `events` array, encoded once and reused under fresh idempotency keys."""
    start = dt.datetime(2026, 11, 25, 10, tzinfo=dt.UTC)
    return json.dumps(
        [
            {
                "type": "page_view",
                "time": (start + dt.timedelta(milliseconds=n)).isoformat(),
                "visitor_id": _visitor(n),
                "ip": f"192.0.2.{n % 250}",
                "user_agent": USER_AGENT,
                "path": f"/pricing/plan-{n % 37}",
            }
            for n in range(HTTP_BATCH)
        ],
        separators=(",", ":"),
    ).encode()


async def _post_batches(
    api: Api, events: bytes, *, connections: int, duration_s: float, tag: str
) -> tuple[int, int, float]:
    """Post batches on `connections` connections until `duration_s` has passed (at least
    one each); the events stored, the batches, and the seconds taken."""
    started = time.perf_counter()
    deadline = started + duration_s
    counts = await asyncio.gather(
        *(_post_on_one(api, events, deadline, f"{tag}{n:02d}") for n in range(connections))
    )
    seconds = time.perf_counter() - started
    return sum(stored for stored, _ in counts), sum(sent for _, sent in counts), seconds


async def _post_on_one(api: Api, events: bytes, deadline: float, tag: str) -> tuple[int, int]:
    reader, writer = await api.connect()
    stored = sent = 0
    try:
        while True:
            batch_key = f"bench-{tag}-{sent:08d}".encode()
            body = b'{"idempotency_key":"' + batch_key + b'","events":' + events + b"}"
            status, answer = await exchange(reader, writer, api.request("POST", "/v1/events", body))
            expect(status, answer, 200, "POST /v1/events")
            receipt = json.loads(answer)
            if receipt["duplicate"]:
                raise RuntimeError(f"batch {batch_key.decode()} was taken for a duplicate")
            stored += int(receipt["stored"])
            sent += 1
            if time.perf_counter() >= deadline:
                return stored, sent
    finally:
        await close(writer)


# ---------------------------------------------------------------- erase


class _TimedKeyStore:
    """A key store that notes the moment `destroy` returns: from then on the person's data
    does not decrypt, whatever else erasure still has to do."""

    def __init__(self, keys: KeyStore) -> None:
        self._keys = keys
        self.destroyed_at: float | None = None

    def sealer(self, person_id: str) -> Sealer | None:
        return self._keys.sealer(person_id)

    def sealers(self, person_ids: Iterable[str], *, create: bool) -> dict[str, Sealer]:
        return self._keys.sealers(person_ids, create=create)

    def destroy(self, person_ids: Iterable[str]) -> int:
        destroyed = self._keys.destroy(person_ids)
        self.destroyed_at = time.perf_counter()
        return destroyed

    def rewrap(self, new_master: bytes) -> int:
        return self._keys.rewrap(new_master)

    def index_key(self) -> bytes:
        return self._keys.index_key()

    def unsettled(self, created_before: dt.datetime) -> list[str]:
        return self._keys.unsettled(created_before)

    def settle(self, kept: Iterable[str], orphaned: Iterable[str]) -> int:
        return self._keys.settle(kept, orphaned)


@dataclass(frozen=True)
class _Labels:
    """The labels a bench record is sealed with (vault.sealing.RecordLabels)."""

    id: int
    person_id: str
    collection_point: str
    field: str
    category: str
    source: str
    source_name: str | None = None


@benchmark("erase.ms", "erase.total_ms")
def erase(run: Run) -> Iterator[Result]:
    """`erase_person` on a person with 100,000 sealed records, on SQLite with a SqlKeyStore."""
    policy = _policy()
    clock = SystemClock()
    unreadable, totals = [], []
    with temporary_sqlite() as (db, path):
        master = new_key()
        keystore_url = f"sqlite:///{path.parent / 'keys.db'}"
        keys = SqlKeyStore(make_engine(keystore_url), master)
        try:
            for number in range(1, ERASE_RUNS + 1):
                run.step(
                    f"run {number}/{ERASE_RUNS}: sealing {ERASE_RECORDS:,} records (not timed)"
                )
                person_id = _person_with_records(db, keys, clock, policy.version)
                timed = _TimedKeyStore(keys)
                run.step(f"run {number}/{ERASE_RUNS}: erase_person")
                started = time.perf_counter()
                receipt = erase_person(db, timed, clock, actor="bench", person_id=person_id)
                finished = time.perf_counter()
                if timed.destroyed_at is None:
                    raise RuntimeError("erase_person did not destroy the person's key")
                _check_erased(db, keystore_url, master, person_id, receipt.records_deleted)
                unreadable.append((timed.destroyed_at - started) * 1000)
                totals.append((finished - started) * 1000)
        finally:
            keys.engine.dispose()
    note = f"median of {ERASE_RUNS} people with {ERASE_RECORDS:,} sealed records each, SQLite"
    if run.wants("erase.ms"):
        yield Result(
            "erase.ms",
            median(unreadable),
            "ms",
            higher_is_better=False,
            target=50,
            note=f"{note}; from calling erase_person until its KeyStore.destroy has "
            "committed the deletion of the person's data key in the key store (the person "
            "and household look-ups included): from then on no copy of their data decrypts",
        )
    if run.wants("erase.total_ms"):
        yield Result(
            "erase.total_ms",
            median(totals),
            "ms",
            higher_is_better=False,
            note=f"{note}; the whole erasure: key destroyed, {ERASE_RECORDS:,} records "
            "deleted, choices forgotten, audit entry written, and the transaction committed",
        )


def _person_with_records(db: Database, keys: KeyStore, clock: SystemClock, version: str) -> str:
    """A user with ERASE_RECORDS records sealed under their key, inserted in bulk."""
    with db.writing() as session:
        person_id = new_person(session, clock, "user").id
    sealer = keys.sealers([person_id], create=True)[person_id]
    submission = new_person_id()
    at = utc_text(clock.now())
    ids = new_record_ids(ERASE_RECORDS)
    rows = [
        (
            record_id,
            person_id,
            submission,
            "survey",
            "answer",
            "survey.answers",
            "given",
            None,
            version,
            at,
            False,
            sealer.seal(
                f"answer number {record_id}".encode(),
                record_ad(
                    _Labels(record_id, person_id, "survey", "answer", "survey.answers", "given")
                ),
            ),
        )
        for record_id in ids
    ]
    columns = (
        "id",
        "person_id",
        "submission_id",
        "collection_point",
        "field",
        "category",
        "source",
        "source_name",
        "policy_version",
        "collected_at",
        "published",
        "sealed",
    )
    with db.writing() as session:
        bulk_insert(session.connection(), "records", columns, rows)
    return person_id


def _check_erased(
    db: Database, keystore_url: str, master: bytes, person_id: str, deleted: int
) -> None:
    """The person has no key, seen from a key store opened afresh, and no records left."""
    if deleted != ERASE_RECORDS:
        raise RuntimeError(f"erase_person deleted {deleted} records, not {ERASE_RECORDS}")
    fresh = SqlKeyStore(make_engine(keystore_url), master)
    try:
        if fresh.sealer(person_id) is not None:
            raise RuntimeError("the erased person's key is still in the key store")
    finally:
        fresh.engine.dispose()
    with db.reading() as session:
        left = session.connection().exec_driver_sql(
            "SELECT count(*) FROM records WHERE person_id = ?", (person_id,)
        )
        if left.scalar_one() != 0:
            raise RuntimeError("records of the erased person are left")
