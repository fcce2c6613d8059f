"""Rights requests: the Shine the Light report of one person with 10,000 ledger rows in the
year, on SQLite, beside a plain sqlite3 count of the same rows."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

from bench.databases import temporary_sqlite
from bench.harness import Result, Run, benchmark, median, percentile
from charter.db import Database, utc_text
from charter.policy.compiled import CompiledPolicy, compile_policy
from charter.policy.loader import load_policy
from charter.requests.shine_the_light import shine_the_light_report, year_bounds
from charter.settings import BUNDLED_POLICY

YEAR = 2026
# The person's ledger rows in the year reported, all for omni_europe's own marketing.
IN_YEAR = 10_000
# Their rows in the year before (not reported), and others disclosed beside them.
YEAR_BEFORE = 5_000
OTHERS_PER_DISCLOSURE = 4
PERSON = "benchstl0000000000000000000000p"
RUNS = 200
WARM_UP = 10
# What omni_europe may receive for `promotional`, in the three shapes the ledger holds.
CATEGORY_SETS = (["contact.email"], ["identity.name"], ["contact.email", "identity.name"])
_ANCHOR = (
    "SELECT count(*) FROM disclosed_people dp JOIN disclosures d ON d.id = dp.disclosure_id "
    "WHERE dp.person_id = ? AND dp.shine_the_light = 1 AND d.at >= ? AND d.at < ?"
)


@benchmark("stl.report_ms")
def report(run: Run) -> Iterator[Result]:
    """p50 of `shine_the_light_report` for a person with 10,000 ledger rows in the year."""
    policy = compile_policy(load_policy(BUNDLED_POLICY))
    with temporary_sqlite() as (db, path):
        run.step(f"filling {IN_YEAR + YEAR_BEFORE:,} disclosures (not timed)")
        _fill(path, policy.version)
        run.step(f"{RUNS} reports, each beside a plain sqlite3 count of the same rows")
        charter, anchor, disclosures = _measure(db, path, policy)
    if disclosures != IN_YEAR:
        raise RuntimeError(f"the report covers {disclosures:,} rows, not {IN_YEAR:,}")
    p50, p99 = median(charter), percentile(charter, 99)
    yield Result(
        "stl.report_ms",
        p50,
        "ms",
        higher_is_better=False,
        anchor="plain sqlite3 count(*) of the same ledger rows",
        anchor_value=median(anchor),
        target=50,
        note=f"p50 of {RUNS} reports (p99 {p99:.2f} ms) of a person with {IN_YEAR:,} ledger "
        f"rows for direct marketing in {YEAR} and {YEAR_BEFORE:,} in {YEAR - 1}, each "
        f"disclosure naming {OTHERS_PER_DISCLOSURE} others too, in its own read unit; anchor "
        f"p50 {median(anchor):.2f} ms (p99 {percentile(anchor, 99):.2f} ms)",
    )


def _fill(path: Path, version: str) -> None:
    """The person and the others, and their disclosures, straight through sqlite3."""
    created = utc_text(dt.datetime(YEAR - 2, 6, 1, tzinfo=dt.UTC))
    start, _ = year_bounds(YEAR)
    before, _ = year_bounds(YEAR - 1)
    # Spread over each year, the same distance apart.
    moments = [before + dt.timedelta(minutes=100 * n) for n in range(YEAR_BEFORE)] + [
        start + dt.timedelta(minutes=50 * n) for n in range(IN_YEAR)
    ]
    disclosures = []
    ledger = []
    others = set()
    for number, moment in enumerate(moments, start=1):
        categories = json.dumps(CATEGORY_SETS[number % len(CATEGORY_SETS)])
        disclosures.append(
            (number, utc_text(moment), categories, version, f"bench-stl-{number}", "0" * 64)
        )
        ledger.append((number, PERSON, True))
        for other in range(OTHERS_PER_DISCLOSURE):
            someone = f"benchstl{(number * 7 + other) % 20_000:023d}"
            others.add(someone)
            ledger.append((number, someone, True))
    people = [(PERSON, created), *((someone, created) for someone in sorted(others))]
    connection = sqlite3.connect(path)
    try:
        with connection:
            connection.executemany(
                "INSERT INTO people (id, kind, created_at) VALUES (?, 'user', ?)", people
            )
            connection.executemany(
                "INSERT INTO disclosures (id, at, recipient, purpose, categories, country, "
                "ground, requester_id, requester, policy_version, mode, requested, disclosed, "
                "excluded, codes, idempotency_key, digest) VALUES (?, ?, 'omni_europe', "
                "'promotional', ?, 'GB', 'affiliates', 1, 'staff:1', ?, 'record', 5, 5, 0, "
                "'{}', ?, ?)",
                disclosures,
            )
            connection.executemany(
                "INSERT INTO disclosed_people (disclosure_id, person_id, shine_the_light) "
                "VALUES (?, ?, ?)",
                ledger,
            )
    finally:
        connection.close()


def _measure(
    db: Database, path: Path, policy: CompiledPolicy
) -> tuple[list[float], list[float], int]:
    """Milliseconds of each report and of each anchor count, alternating so that the
    machine's drift falls on both; and the rows the report covers."""
    start, end = (utc_text(moment) for moment in year_bounds(YEAR))
    charter: list[float] = []
    anchor: list[float] = []
    covered = 0
    connection = sqlite3.connect(path)
    try:
        for run in range(WARM_UP + RUNS):
            began = time.perf_counter()
            with db.reading() as session:
                made = shine_the_light_report(session, policy, person_id=PERSON, year=YEAR)
            took = time.perf_counter() - began
            began = time.perf_counter()
            counted = connection.execute(_ANCHOR, (PERSON, start, end)).fetchone()[0]
            counted_in = time.perf_counter() - began
            if counted != made.disclosures:
                raise RuntimeError(f"the report covers {made.disclosures} rows, sqlite3 {counted}")
            covered = made.disclosures
            if run >= WARM_UP:
                charter.append(took * 1000)
                anchor.append(counted_in * 1000)
    finally:
        connection.close()
    return charter, anchor, covered
