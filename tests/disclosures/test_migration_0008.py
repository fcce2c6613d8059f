"""Migration 0008 on a ledger recorded under 0007: the exclusions each disclosure kept as a
JSON list move to `disclosure_exclusions` (in their order) and their counts to `codes`, so
the ledger reads them as before; a downgrade puts the list back where it was."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command

from charter import migrations
from charter.db import Database, make_engine
from charter.disclosures.ledger import exclusions_page
from charter.disclosures.models import Disclosure

# The 0007 table, as that revision created it (charter.tables describes the newest one).
_DISCLOSURES_0007 = sa.table(
    "disclosures",
    sa.column("id", sa.Integer),
    sa.column("at", sa.String),
    sa.column("recipient", sa.String),
    sa.column("purpose", sa.String),
    sa.column("categories", sa.JSON),
    sa.column("requester_id", sa.Integer),
    sa.column("requester", sa.String),
    sa.column("policy_version", sa.String),
    sa.column("mode", sa.String),
    sa.column("requested", sa.Integer),
    sa.column("disclosed", sa.Integer),
    sa.column("excluded", sa.Integer),
    sa.column("exclusions", sa.JSON),
    sa.column("idempotency_key", sa.String),
    sa.column("digest", sa.String),
)

_DISCLOSED_0007 = sa.table(
    "disclosed_people",
    sa.column("disclosure_id", sa.Integer),
    sa.column("person_id", sa.String),
    sa.column("shine_the_light", sa.Boolean),
)

DISCLOSED = ["person-b", "person-d", "person-e"]
LEFT_OUT = [
    ["person-c", "person_erased"],
    ["nobody-1", "person_not_found"],
    ["person-a", "gpc_signal"],
    ["nobody-2", "person_not_found"],
]


def disclosure_0007(number: int, exclusions: list[list[str]]) -> dict[str, Any]:
    return {
        "id": number,
        "at": f"2026-11-2{number}T12:00:00.000000Z",
        "recipient": "google_ads",
        "purpose": "promotional",
        "categories": ["cookie.id"],
        "requester_id": 7,
        "requester": "staff:7/key:kkkkkkkkkkkk",
        "policy_version": "1.0",
        "mode": "record",
        "requested": 3 + len(exclusions),
        "disclosed": 3,
        "excluded": len(exclusions),
        "exclusions": exclusions,
        "idempotency_key": f"old-{number}",
        "digest": "0" * 64,
    }


@pytest.fixture
def at_0007(database_url_factory: Callable[[], str]) -> Iterator[tuple[str, sa.Engine]]:
    """A new database migrated to 0007, holding two disclosures: one that disclosed three
    people and left four ids out, one that left nobody out."""
    url = database_url_factory()
    engine = make_engine(url)
    command.upgrade(migrations.alembic_config(engine), "0007")
    with engine.begin() as connection:
        connection.execute(
            _DISCLOSURES_0007.insert(), [disclosure_0007(1, LEFT_OUT), disclosure_0007(2, [])]
        )
        connection.execute(
            _DISCLOSED_0007.insert(),
            [
                {"disclosure_id": number, "person_id": person, "shine_the_light": False}
                for number in (1, 2)
                for person in DISCLOSED
            ],
        )
    yield url, engine
    engine.dispose()


def columns(engine: sa.Engine, table: str) -> set[str]:
    return {column["name"] for column in sa.inspect(engine).get_columns(table)}


def ledger_people(engine: sa.Engine) -> list[tuple[int, str]]:
    with engine.connect() as connection:
        rows = connection.exec_driver_sql(
            "SELECT disclosure_id, person_id FROM disclosed_people ORDER BY 1, 2"
        )
        return [(int(number), str(person)) for number, person in rows]


def test_the_upgrade_moves_the_exclusions_into_their_table_and_counts_them(
    at_0007: tuple[str, sa.Engine],
) -> None:
    url, engine = at_0007
    assert migrations.upgrade(engine) is True
    assert migrations.current_revision(engine) == migrations.HEAD
    assert "exclusions" not in columns(engine, "disclosures")
    assert ledger_people(engine) == [(n, person) for n in (1, 2) for person in DISCLOSED]
    with engine.connect() as connection:
        rows = connection.exec_driver_sql(
            "SELECT disclosure_id, position, person_id, code FROM disclosure_exclusions "
            "ORDER BY disclosure_id, position"
        ).all()
    assert [tuple(row) for row in rows] == [
        (1, position, person, code) for position, (person, code) in enumerate(LEFT_OUT)
    ]
    database = Database.connect(url)
    try:
        with database.reading() as session:
            assert exclusions_page(session, 1) == [tuple(pair) for pair in LEFT_OUT]
            assert exclusions_page(session, 1, start=2, limit=1) == [("person-a", "gpc_signal")]
            assert exclusions_page(session, 2) == []
            first = session.get_one(Disclosure, 1)
            assert first.codes == {"gpc_signal": 1, "person_erased": 1, "person_not_found": 2}
            assert first.selection_id is None
            assert session.get_one(Disclosure, 2).codes == {}
    finally:
        database.dispose()


def test_a_downgrade_to_0007_puts_the_exclusions_back_in_their_column(
    at_0007: tuple[str, sa.Engine],
) -> None:
    _, engine = at_0007
    migrations.upgrade(engine)
    command.downgrade(migrations.alembic_config(engine), "0007")
    assert migrations.current_revision(engine) == "0007"
    tables = set(sa.inspect(engine).get_table_names())
    assert not tables & {
        "disclosure_exclusions",
        "disclosure_selections",
        "disclosure_selected_people",
    }
    assert {"codes", "selection_id"}.isdisjoint(columns(engine, "disclosures"))
    assert "person_id" not in columns(engine, "mail_outbox")
    with engine.connect() as connection:
        stored = connection.exec_driver_sql(
            "SELECT id, exclusions FROM disclosures ORDER BY id"
        ).all()
    restored = {
        number: json.loads(value) if isinstance(value, str) else value for number, value in stored
    }
    assert restored == {1: LEFT_OUT, 2: []}
    assert ledger_people(engine) == [(n, person) for n in (1, 2) for person in DISCLOSED]
    # And up again: the same exclusions, once each.
    assert migrations.upgrade(engine) is True
    with engine.connect() as connection:
        count = connection.exec_driver_sql("SELECT COUNT(*) FROM disclosure_exclusions").scalar()
    assert count == len(LEFT_OUT)
