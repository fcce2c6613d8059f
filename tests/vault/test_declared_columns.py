"""Privacy-as-code for Charter's own tables (C2): every column that holds personal data is
declared with its category (`info={"personal_data": ...}`), and none holds it in clear.

After a realistic ingest through HTTP, every table and column is read back raw; a column
whose stored values contain a seeded personal value fails the test, declared or not.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy import select

from charter.db import Database
from charter.policy.compiled import CompiledPolicy
from charter.tables import metadata
from charter.vault.events import decode_payload
from charter.vault.keystore import SqlKeyStore
from charter.vault.models import LogEvent
from charter.vault.sealing import event_ad
from tests.conftest import bearer

pytestmark = pytest.mark.clause("C2")

Headers = dict[str, str]
PEOPLE = [
    {
        "name": "Ada Lovelace-Example",
        "email": "ada.lovelace@example.com",
        "visitor": "vid-a1b2c3d4",
        "ip": "192.0.2.41",
        "phone": "+1 555 0141",
    },
    {
        "name": "Grace Hopper-Example",
        "email": "grace.hopper@example.com",
        "visitor": "vid-e5f6a7b8",
        "ip": "198.51.100.42",
        "phone": "+1 555 0142",
    },
    {
        "name": "Alan Turing-Example",
        "email": "alan.turing@mail.example.net",
        "visitor": "vid-c9d0e1f2",
        "ip": "203.0.113.43",
        "phone": "+1 555 0143",
    },
]
OTHER_SEEDS = {
    "correspondent": "katherine.johnson@example.com",
    "message": "Please call me about the invoice",
    "resume": "Compiler engineer since 1952",
    "applicant": "Margaret Hamilton-Example",
    "survey": "The onboarding was confusing",
    "review": "Charter keeps its promises",
    "location": "Springfield-Example",
    "user_agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "other_visitor": "vid-0f1e2d3c",
    "cookie": "ck-9a8b7c6d5e",
    "company": "Example Widgets Corporation",
}
HMAC_HEX = re.compile(r"^[0-9a-f]{64}$")


def seeds() -> list[str]:
    values = [value for person in PEOPLE for value in person.values()]
    return [*values, *OTHER_SEEDS.values()]


def _ingest(client: TestClient, make_key: Callable[[str], str]) -> None:
    service = bearer(make_key("service_client"))

    def ok(response: Any, status: int = 200) -> dict[str, Any]:
        assert response.status_code == status, response.text
        body: dict[str, Any] = response.json()
        return body

    def collect(submission: dict[str, Any]) -> dict[str, Any]:
        return ok(client.post("/v1/collect", headers=service, json=submission), 201)

    ok(
        client.post(
            "/v1/events",
            headers=service,
            json={
                "idempotency_key": "ingest-visits",
                "events": [
                    {
                        "type": "page_view",
                        "time": "2026-11-24T08:00:00Z",
                        "visitor_id": p["visitor"],
                        "ip": p["ip"],
                        "user_agent": OTHER_SEEDS["user_agent"],
                        "path": "/pricing",
                        "location": OTHER_SEEDS["location"],
                        "connection": "wifi",
                    }
                    for p in PEOPLE
                ],
            },
        )
    )
    users = []
    for number, person in enumerate(PEOPLE):
        extra = [OTHER_SEEDS["other_visitor"]] if number == 0 else []
        users.append(
            collect(
                {
                    "collection_point": "sign_up",
                    "person": {
                        "visitor_id": person["visitor"],
                        "other_visitor_ids": extra,
                        "customer_id": "cust-0001",
                    },
                    "fields": {
                        "name": person["name"],
                        "email": person["email"],
                        "phone": person["phone"],
                    },
                }
            )["person_id"]
        )
    ok(
        client.post(
            "/v1/events",
            headers=service,
            json={
                "idempotency_key": "ingest-after",
                "events": [
                    {
                        "type": "click",
                        "time": "2026-11-25T08:00:00Z",
                        "person_id": user,
                        "ip": person["ip"],
                        # Every field an event may carry, after sign-up as before it.
                        "user_agent": OTHER_SEEDS["user_agent"],
                        "location": OTHER_SEEDS["location"],
                        "connection": "cellular",
                        "item": "export-button",
                    }
                    for user, person in zip(users, PEOPLE, strict=True)
                ],
            },
        )
    )
    collect(
        {
            "collection_point": "sign_up",
            "person": {"person_id": users[0]},
            "source": "other_source",
            "source_name": "service_providers",
            "fields": {"company": OTHER_SEEDS["company"]},
        }
    )
    collect(
        {
            "collection_point": "correspondence",
            "fields": {"email": PEOPLE[1]["email"].upper(), "message": OTHER_SEEDS["message"]},
        }
    )
    collect(
        {
            "collection_point": "correspondence",
            "fields": {
                "email": OTHER_SEEDS["correspondent"],
                "message": OTHER_SEEDS["message"],
            },
        }
    )
    collect(
        {
            "collection_point": "survey",
            "person": {"person_id": users[1]},
            "fields": {"answers": OTHER_SEEDS["survey"], "email": PEOPLE[1]["email"]},
        }
    )
    collect(
        {
            "collection_point": "review",
            "person": {"person_id": users[2]},
            "publish": True,
            "fields": {"review": OTHER_SEEDS["review"], "display_name": PEOPLE[2]["name"]},
        }
    )
    collect(
        {
            "collection_point": "cookie_identifiers",
            "source": "automatic",
            "person": {"visitor_id": OTHER_SEEDS["other_visitor"]},
            "fields": {"cookie_id": OTHER_SEEDS["cookie"]},
        }
    )
    collect(
        {
            "collection_point": "job_application",
            "person": {"visitor_id": PEOPLE[2]["visitor"]},
            "fields": {
                "name": OTHER_SEEDS["applicant"],
                "email": "margaret@example.com",
                "resume": OTHER_SEEDS["resume"],
            },
        }
    )
    ok(
        client.put(
            f"/v1/people/{users[0]}/choices",
            headers={**service, "Sec-GPC": "1"},
            json={"choices": {"cookie:performance": False}},
        )
    )
    for user in users:
        ok(
            client.post(
                f"/v1/people/{user}/use",
                headers=service,
                json={
                    "purpose": "service_support",
                    "categories": ["identity.name", "contact.email"],
                },
            )
        )
        ok(
            client.post(
                "/v1/decisions",
                headers=service,
                json={"person_id": user, "purpose": "promotional", "categories": ["usage.pages"]},
            )
        )
    ok(
        client.post(
            "/v1/decisions",
            headers=service,
            json={
                "person_id": users[1],
                "purpose": PEOPLE[1]["email"],
                "categories": [PEOPLE[1]["ip"]],
            },
        )
    )
    ok(client.delete(f"/v1/people/{users[2]}", headers=bearer(make_key("privacy_officer"))))


def _text(value: object) -> str | None:
    if isinstance(value, memoryview):
        value = value.tobytes()
    if isinstance(value, bytes):
        return value.decode("latin-1").lower()
    if value is None:
        return None
    return str(value).lower()


def scan(
    connection: sa.Connection, tables: Iterable[str], values: list[str]
) -> list[tuple[str, str, str]]:
    """(table, column, value) for every seeded value found in a stored value, raw as stored."""
    found = set()
    wanted = [value.lower() for value in values]
    for table in tables:
        result = connection.exec_driver_sql(f'SELECT * FROM "{table}"')  # noqa: S608 - our names
        columns = list(result.keys())
        for row in result:
            for column, raw in zip(columns, row, strict=True):
                text = _text(raw)
                if text is None:
                    continue
                found |= {(table, column, seed) for seed in wanted if seed in text}
    return sorted(found)


def _existing_tables(connection: sa.Connection) -> list[str]:
    present = set(sa.inspect(connection).get_table_names())
    return [table.name for table in metadata.sorted_tables if table.name in present]


@pytest.fixture
def ingested(client: TestClient, make_key: Callable[[str], str]) -> None:
    _ingest(client, make_key)


def test_no_column_holds_personal_data_in_clear(
    ingested: None, db: Database, keys: SqlKeyStore
) -> None:
    with db.reading() as session:
        connection = session.connection()
        tables = _existing_tables(connection)
        assert {"people", "records", "events", "visitor_ids", "choices", "audit_entries"} <= set(
            tables
        )
        counts = {
            t: connection.exec_driver_sql(f'SELECT COUNT(*) FROM "{t}"').scalar()  # noqa: S608
            for t in ("records", "events", "visitor_ids", "choice_history", "audit_entries")
        }
        assert all(counts.values()), counts
        assert scan(connection, tables, seeds()) == []
    with keys.engine.connect() as connection:
        assert scan(connection, sa.inspect(connection).get_table_names(), seeds()) == []


def test_the_scan_finds_a_value_stored_in_clear(ingested: None, db: Database) -> None:
    """The check above can fail: a personal value slipped into an ordinary column is found."""
    with db.writing() as session:
        session.connection().exec_driver_sql(
            "UPDATE records SET field = 'ada.lovelace@example.com' WHERE category = 'contact.email'"
        )
        tables = _existing_tables(session.connection())
        found = scan(session.connection(), tables, seeds())
    assert ("records", "field", "ada.lovelace@example.com") in found


def test_declared_columns_exist_and_hold_what_they_declare(ingested: None, db: Database) -> None:
    declared = [
        (table, column)
        for table in metadata.sorted_tables
        for column in table.columns
        if "personal_data" in column.info
    ]
    assert {(t.name, c.name) for t, c in declared} >= {
        ("people", "email_index"),
        ("visitor_ids", "index"),
        ("records", "sealed"),
        ("events", "sealed"),
    }
    with db.reading() as session:
        inspector = sa.inspect(session.connection())
        present = set(inspector.get_table_names())
        for table, column in declared:
            assert str(column.info["personal_data"]).strip(), (table.name, column.name)
            assert table.name in present, f"{table.name} is declared but not migrated"
            assert column.name in {c["name"] for c in inspector.get_columns(table.name)}, (
                f"{table.name}.{column.name} is declared but does not exist"
            )
            if "(HMAC)" in column.info["personal_data"]:
                query = f'SELECT "{column.name}" FROM "{table.name}"'  # noqa: S608 - our names
                values = session.connection().exec_driver_sql(query).scalars().all()
                assert values, (table.name, column.name)
                assert all(v is None or HMAC_HEX.match(v) for v in values), (
                    table.name,
                    column.name,
                )


def test_every_column_of_sealed_bytes_is_declared() -> None:
    binary = [
        (table.name, column.name)
        for table in metadata.sorted_tables
        for column in table.columns
        if isinstance(column.type, sa.LargeBinary)
    ]
    assert ("records", "sealed") in binary
    assert [
        (t, c) for t, c in binary if "personal_data" not in metadata.tables[t].columns[c].info
    ] == []


@pytest.mark.clause("C12", "C14")
def test_every_stored_event_field_is_declared_by_its_collection_point(
    ingested: None, db: Database, keys: SqlKeyStore, omni_compiled: CompiledPolicy
) -> None:
    """Privacy as code reaches inside the sealed payloads too: each field an event carries is
    a field its collection point declares (a signed-up user's events included)."""
    undeclared: set[tuple[str, str]] = set()
    points: set[str] = set()
    with db.reading() as session:
        for event in session.scalars(select(LogEvent)):
            sealer = keys.sealer(event.person_id)
            assert sealer is not None
            payload = decode_payload(
                sealer.open(
                    event.sealed,
                    event_ad(event.uid, event.person_id, event.kind, event.collection_point),
                )
            )
            declared = {
                f.name for f in omni_compiled.collection_points[event.collection_point].fields
            }
            undeclared |= {(event.collection_point, name) for name in set(payload) - declared}
            points.add(event.collection_point)
    assert points == {"log_data", "user_activity"}
    assert undeclared == set()
