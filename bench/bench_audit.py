"""The audit log: how fast entries are appended (one per transaction, and in batches), and
how fast the whole chain is verified."""

from __future__ import annotations

import datetime as dt
import hashlib
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

from bench.databases import temporary_postgres, temporary_sqlite
from bench.harness import Result, Run, benchmark
from charter.audit.chain import (
    GENESIS,
    Event,
    canonical_details,
    entry_hash,
    record,
    record_many,
    verify_chain,
)
from charter.clock import SystemClock
from charter.db import Database, DatabaseUnavailable, utc_text

SINGLE_SECONDS = 3.0
BATCH = 1000
BATCHED_SECONDS = 4.0
VERIFY_ENTRIES = 1_000_000

SQLITE = ("audit.append.single_tps", "audit.append.batched_eps")
POSTGRES = ("audit.append.pg_single_tps", "audit.append.pg_batched_eps")


def _event(number: int) -> Event:
    return Event(
        "staff:1/key:benchbenchben",
        "vault:record:read",
        f"record:{number}",
        details={"purpose": "P3", "category": "contact"},
    )


@benchmark(*SQLITE, *POSTGRES)
def append(run: Run) -> Iterator[Result]:
    """Entries appended per second through `record` and `record_many`, on a migrated database."""
    if run.wants_any(*SQLITE):
        with temporary_sqlite() as (db, _):
            yield from _append(run, db, SQLITE, "SQLite")
    if run.wants_any(*POSTGRES):
        try:
            with temporary_postgres() as db:
                yield from _append(run, db, POSTGRES, "PostgreSQL")
        except DatabaseUnavailable as exc:
            run.notice(f"PostgreSQL does not answer, {', '.join(POSTGRES)} skipped: {exc}")


def _append(run: Run, db: Database, names: tuple[str, str], label: str) -> Iterator[Result]:
    single, batched = names
    clock = SystemClock()
    if run.wants(single):
        run.step(f"{label}: one entry per transaction for {SINGLE_SECONDS:.0f} s")
        count = 0
        started = time.perf_counter()
        while (elapsed := time.perf_counter() - started) < SINGLE_SECONDS:
            with db.writing() as session:
                record(session, clock, _event(count))
            count += 1
        yield Result(
            single,
            count / elapsed,
            "entries/s",
            higher_is_better=True,
            note=f"{label}: {count} transactions of Database.writing() + record",
        )
    if run.wants(batched):
        run.step(f"{label}: batches of {BATCH:,} for {BATCHED_SECONDS:.0f} s")
        events = [_event(number) for number in range(BATCH)]
        count = 0
        started = time.perf_counter()
        while (elapsed := time.perf_counter() - started) < BATCHED_SECONDS:
            with db.writing() as session:
                record_many(session, clock, events)
            count += BATCH
        yield Result(
            batched,
            count / elapsed,
            "entries/s",
            higher_is_better=True,
            note=f"{label}: {count // BATCH} transactions of record_many x {BATCH:,}",
        )


@benchmark("audit.verify")
def verify(run: Run) -> Iterator[Result]:
    """verify_chain over a million entries on SQLite; the fill is not timed."""
    with temporary_sqlite() as (db, path):
        # Close the pooled connection while the fill writes the file; the engine reopens one.
        db.dispose()
        run.step(f"filling {VERIFY_ENTRIES:,} chained entries (not timed)")
        _fill(path, VERIFY_ENTRIES)
        run.step(f"verifying {VERIFY_ENTRIES:,} entries")
        with db.reading() as session:
            started = time.perf_counter()
            verification = verify_chain(session)
            elapsed = time.perf_counter() - started
        run.step(f"anchor: a plain SHA-256 walk over the same {VERIFY_ENTRIES:,} entries")
        anchor = _plain_walk(path)
    if not verification.ok or verification.entries != VERIFY_ENTRIES:
        raise RuntimeError(f"the filled chain did not verify: {verification.as_json()}")
    yield Result(
        "audit.verify",
        VERIFY_ENTRIES / elapsed,
        "entries/s",
        higher_is_better=True,
        anchor="plain sqlite3 + hashlib walk",
        anchor_value=VERIFY_ENTRIES / anchor,
        target=300_000,
        ratio_target=0.5,
        note=f"{VERIFY_ENTRIES:,} entries on SQLite in {elapsed:.2f} s; the anchor reads the "
        "same rows with sqlite3 in one query and hashes the same bytes with hashlib.sha256, "
        f"checking nothing, in {anchor:.2f} s",
    )


def _plain_walk(path: Path) -> float:
    """Seconds to read every entry with plain sqlite3 and SHA-256 the bytes its hash covers:
    the least any verification of the chain must do."""
    connection = sqlite3.connect(path)
    try:
        started = time.perf_counter()
        sha256, join = hashlib.sha256, "\x1f".join
        cursor = connection.execute(
            "SELECT seq, at, actor, action, target, outcome, details, prev_hash, hash "
            "FROM audit_entries ORDER BY seq"
        )
        matched = 0
        for row in cursor:
            line = join((str(row[0]), *row[1:8]))
            matched += sha256(line.encode()).hexdigest() == row[8]
        elapsed = time.perf_counter() - started
    finally:
        connection.close()
    if matched != VERIFY_ENTRIES:
        raise RuntimeError(f"the anchor walk matched {matched} of {VERIFY_ENTRIES} hashes")
    return elapsed


def _fill(path: Path, total: int) -> None:
    """Insert `total` correctly chained entries and the head row, with plain executemany."""
    actors = [f"staff:{n}/key:benchkey{n:04d}" for n in range(1, 9)]
    actions = [
        "vault:record:read",
        "consent:choice:changed",
        "disclosure:recipient:recorded",
        "staff:key:created",
        "access:decision:refused",
    ]
    details = [canonical_details({"purpose": f"P{n}", "category": "contact"}) for n in range(1, 12)]
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    prev, at = GENESIS, utc_text(start)
    chunk: list[tuple[int, str, str, str, str, str, str, str, str]] = []
    connection = sqlite3.connect(path)
    try:
        # Fill outside WAL, so that every page is written once into the database file and no
        # large WAL is left for the timed reads to look through; then back to WAL as Charter runs.
        connection.execute("PRAGMA journal_mode=DELETE")
        connection.execute("PRAGMA synchronous=OFF")
        connection.execute("PRAGMA cache_size=-262144")  # 256 MiB: the indexes stay in memory
        with connection:
            connection.execute("DELETE FROM audit_entries")
            for seq in range(1, total + 1):
                if seq % BATCH == 1:
                    at = utc_text(start + dt.timedelta(seconds=seq // BATCH))
                actor, action = actors[seq % len(actors)], actions[seq % len(actions)]
                target, detail = f"person:{seq % 50_000}", details[seq % len(details)]
                outcome = "refused" if action.endswith("refused") else "ok"
                digest = entry_hash(
                    seq=seq,
                    at=at,
                    actor=actor,
                    action=action,
                    target=target,
                    outcome=outcome,
                    details=detail,
                    prev_hash=prev,
                )
                chunk.append((seq, at, actor, action, target, outcome, detail, prev, digest))
                prev = digest
                if len(chunk) == 50_000 or seq == total:
                    connection.executemany(
                        "INSERT INTO audit_entries (seq, at, actor, action, target, outcome, "
                        "details, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        chunk,
                    )
                    chunk.clear()
            connection.execute("DELETE FROM audit_head")
            connection.execute(
                "INSERT INTO audit_head (id, seq, hash) VALUES (1, ?, ?)", (total, prev)
            )
        connection.execute("PRAGMA journal_mode=WAL")
    finally:
        connection.close()
