"""Disclosures: one bulk disclosure of 100,000 people on SQLite, each decided by their own
state and recorded in the ledger, beside a raw sqlite3 `executemany` of the same ledger rows."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

from bench.databases import temporary_sqlite
from bench.harness import Result, Run, benchmark
from charter.clock import SystemClock
from charter.db import utc_text
from charter.disclosures.guards import DisclosureRequest
from charter.disclosures.ledger import record_disclosure, requester_of
from charter.policy.compiled import GPC_TOPIC, compile_policy
from charter.policy.loader import load_policy
from charter.settings import BUNDLED_POLICY
from charter.staff.service import Actor

PEOPLE = 100_000
# Every tenth person opted out of the purpose, every twentieth sent GPC.
OPTED_OUT_EVERY = 10
GPC_EVERY = 20
ACTOR = Actor(staff_id=1, key_id="benchbenchbe", role="privacy_officer", permissions=frozenset())


@benchmark("disclosures.bulk_per_s")
def bulk(run: Run) -> Iterator[Result]:
    """People decided and recorded per second in one `record_disclosure` of 100,000 people
    to an advertiser (each person's opt-out and GPC decide), on SQLite."""
    policy = compile_policy(load_policy(BUNDLED_POLICY))
    with temporary_sqlite() as (db, path):
        run.step(f"filling {PEOPLE:,} people and their choices (not timed)")
        people = _fill(path, policy.version)
        request = DisclosureRequest(
            "google_ads", "promotional", ("cookie.id", "usage"), requester_of(ACTOR)
        )
        run.step(f"one disclosure of {PEOPLE:,} people")
        started = time.perf_counter()
        with db.writing() as session:
            answer = record_disclosure(
                session,
                SystemClock(),
                policy,
                actor=ACTOR,
                request=request,
                people=people,
                idempotency_key="bench-bulk-1",
            )
        elapsed = time.perf_counter() - started
        db.dispose()
        run.step(f"anchor: raw sqlite3 executemany of the same {answer.disclosed:,} ledger rows")
        anchor = _raw_ledger(path, answer.id)
    if answer.requested != PEOPLE or answer.disclosed + answer.excluded != PEOPLE:
        raise RuntimeError(f"the disclosure did not decide everyone: {answer}")
    yield Result(
        "disclosures.bulk_per_s",
        PEOPLE / elapsed,
        "people/s",
        higher_is_better=True,
        anchor="raw sqlite3 executemany of the ledger rows",
        anchor_value=PEOPLE / anchor,
        target=20_000,
        note=f"{PEOPLE:,} people in {elapsed:.2f} s ({answer.disclosed:,} disclosed, "
        f"{answer.excluded:,} excluded: {answer.codes}), states read, decided, ledger and "
        f"audit written, committed; the anchor inserts the same {answer.disclosed:,} rows "
        f"with sqlite3 and commits, deciding nothing, in {anchor:.3f} s",
    )


def _fill(path: Path, version: str) -> list[str]:
    """Insert the people, and the choices of those who opted out or sent GPC."""
    now = utc_text(SystemClock().now())
    people = [f"bench{number:011d}" for number in range(PEOPLE)]
    choices = [
        (person, "purpose:promotional", False, "api", version, now)
        for number, person in enumerate(people)
        if number % OPTED_OUT_EVERY == 0
    ] + [
        (person, GPC_TOPIC, True, "gpc", version, now)
        for number, person in enumerate(people)
        if number % GPC_EVERY == 1
    ]
    connection = sqlite3.connect(path)
    try:
        with connection:
            connection.executemany(
                "INSERT INTO people (id, kind, created_at) VALUES (?, 'user', ?)",
                [(person, now) for person in people],
            )
            connection.executemany(
                "INSERT INTO choices (person_id, topic, granted, method, policy_version, at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                choices,
            )
    finally:
        connection.close()
    return people


def _raw_ledger(path: Path, disclosure_id: int) -> float:
    """Seconds to insert a copy of the disclosure's ledger rows with plain sqlite3 and commit."""
    connection = sqlite3.connect(path)
    try:
        rows = connection.execute(
            "SELECT person_id, shine_the_light FROM disclosed_people WHERE disclosure_id = ?",
            (disclosure_id,),
        ).fetchall()
        connection.execute(
            "INSERT INTO disclosures (id, at, recipient, purpose, categories, country, ground, "
            "legal_process, approver_id, requester_id, requester, policy_version, mode, "
            "requested, disclosed, excluded, codes, idempotency_key, digest) "
            "SELECT id + 1, at, recipient, purpose, categories, country, ground, legal_process, "
            "approver_id, requester_id, requester, policy_version, mode, requested, disclosed, "
            "excluded, codes, 'anchor', digest FROM disclosures WHERE id = ?",
            (disclosure_id,),
        )
        connection.commit()
        copy = disclosure_id + 1
        started = time.perf_counter()
        connection.executemany(
            "INSERT INTO disclosed_people (disclosure_id, person_id, shine_the_light) "
            "VALUES (?, ?, ?)",
            [(copy, person, flag) for person, flag in rows],
        )
        connection.commit()
        return time.perf_counter() - started
    finally:
        connection.close()
