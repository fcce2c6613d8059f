"""Encryption at rest (C2): after a realistic ingest over HTTP, the raw database files (or a
PostgreSQL dump) hold none of the names, e-mail addresses or IP addresses sent in; and a sealed
value moved to another row or person does not decrypt there."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy import text

from charter.clock import FixedClock
from charter.db import Database
from charter.policy.compiled import CompiledPolicy
from charter.settings import Settings
from charter.staff.service import add_staff, create_key
from charter.vault.keystore import SqlKeyStore
from charter.web.app import create_app
from tests.conftest import bearer

pytestmark = pytest.mark.clause("C2")

# Reserved test data: example domains (RFC 2606) and documentation addresses (RFC 5737).
PEOPLE = [
    {
        "name": "Zebulon Testperson",
        "email": "zebulon.testperson@example.com",
        "phone": "+1 202 555 0147",
        "company": "Quuxworth Widgetry",
        "address": "1428 Testfield Lane, Exampleton",
        "ip": "192.0.2.15",
        "location": "Exampleton Heights",
        "message": "Zebulon here: my parcel never arrived",
    },
    {
        "name": "Philippa Quillfeather",
        "email": "philippa.quillfeather@example.org",
        "phone": "+1 202 555 0198",
        "company": "Fernlight Sampling",
        "address": "77 Placeholder Row, Sampleburg",
        "ip": "198.51.100.23",
        "location": "Sampleburg Lowlands",
        "message": "Philippa asks about invoice numbering",
    },
    {
        "name": "Ignatius Mockingsworth",
        "email": "ignatius.mockingsworth@example.net",
        "phone": "+1 202 555 0111",
        "company": "Dummicorp Holdings",
        "address": "9 Fixture Court, Stubville",
        "ip": "203.0.113.77",
        "location": "Stubville Outskirts",
        "message": "Ignatius would like a callback",
    },
]
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
STAFF_NAME = "scanned-web-backend"


def visitor_id(number: int) -> str:
    return f"visitor-cookie-zq{number:04d}-testvalue"


def payment(number: int) -> str:
    return f"PAYREF-ZQX-{number:06d}-TEST"


def seeded_values() -> list[str]:
    values = [value for person in PEOPLE for value in person.values()]
    values += [visitor_id(n) for n in range(len(PEOPLE))]
    values += [payment(n) for n in range(len(PEOPLE))]
    return [*values, USER_AGENT]


def found_in(raw: bytes, values: list[str]) -> list[str]:
    """The values present in `raw` as bytes, lower-cased, or hex (pg_dump writes bytea so)."""
    lowered = raw.lower()
    found = []
    for value in values:
        data = value.encode()
        if data in raw or data.lower() in lowered or data.hex().encode() in lowered:
            found.append(value)
    return found


@pytest.fixture
def committed_client(
    committed_db: Database,
    keys: SqlKeyStore,
    settings: Settings,
    omni_compiled: CompiledPolicy,
    clock: FixedClock,
) -> Iterator[TestClient]:
    """The service on a database whose writes really commit."""
    app = create_app(settings, omni_compiled, committed_db, keys, clock=clock)
    with TestClient(app) as client:
        yield client


def committed_key(
    db: Database, clock: FixedClock, policy: CompiledPolicy, name: str, role: str
) -> str:
    with db.writing() as session:
        add_staff(session, clock, policy, actor="test", name=name, role=role)
        return create_key(session, clock, actor="test", staff_name=name).key


def ingest(client: TestClient, service: dict[str, str]) -> dict[str, str]:
    """Visits, sign-ups, orders, correspondence and later activity; returns email -> person."""
    people = {}
    for number, person in enumerate(PEOPLE):
        before = [
            {
                "type": "page_view",
                "time": f"2026-11-2{number}T09:00:0{n}Z",
                "visitor_id": visitor_id(number),
                "ip": person["ip"],
                "user_agent": USER_AGENT,
                "path": "/pricing",
                "location": person["location"],
                "connection": "wifi",
            }
            for n in range(5)
        ]
        posted = client.post(
            "/v1/events",
            headers=service,
            json={"idempotency_key": f"visits-{number:04d}", "events": before},
        )
        assert posted.status_code == 200, posted.text
        signed = client.post(
            "/v1/collect",
            headers=service,
            json={
                "collection_point": "sign_up",
                "person": {"visitor_id": visitor_id(number)},
                "fields": {k: person[k] for k in ("name", "email", "phone", "company")},
            },
        )
        assert signed.status_code == 201, signed.text
        person_id = signed.json()["person_id"]
        people[person["email"]] = person_id
        ordered = client.post(
            "/v1/collect",
            headers=service,
            json={
                "collection_point": "order",
                "person": {"person_id": person_id},
                "fields": {
                    "name": person["name"],
                    "email": person["email"],
                    "billing_address": person["address"],
                    "items": "2 x widget",
                    "payment_reference": payment(number),
                },
            },
        )
        assert ordered.status_code == 201, ordered.text
        wrote = client.post(
            "/v1/collect",
            headers=service,
            json={
                "collection_point": "correspondence",
                "fields": {
                    "email": person["email"],
                    "name": person["name"],
                    "message": person["message"],
                },
            },
        )
        assert wrote.status_code == 201, wrote.text
        after = [
            {
                "type": "click",
                "time": f"2026-11-2{number}T10:00:0{n}Z",
                "person_id": person_id,
                "ip": person["ip"],
                "user_agent": USER_AGENT,
                "item": "buy-now",
            }
            for n in range(5)
        ]
        posted = client.post(
            "/v1/events",
            headers=service,
            json={"idempotency_key": f"clicks-{number:04d}", "events": after},
        )
        assert posted.status_code == 200, posted.text
    return people


def raw_files(url: str) -> bytes:
    """The SQLite database file and its WAL (and shared-memory) files, as they are on disk."""
    path = Path(sa.make_url(url).database or "")
    files = [p for p in path.parent.iterdir() if p.name.startswith(path.name)]
    assert path in files
    return b"".join(p.read_bytes() for p in files)


def pg_dump(url: str) -> bytes:
    program = shutil.which("pg_dump")
    if program is None:
        pytest.skip("pg_dump is not installed")
    libpq = sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    done = subprocess.run(
        [program, "--no-owner", "--dbname", libpq], capture_output=True, check=True, timeout=120
    )
    return done.stdout


def stored_bytes(url: str) -> bytes:
    return raw_files(url) if sa.make_url(url).get_backend_name() == "sqlite" else pg_dump(url)


def test_no_personal_value_is_in_the_database_files_or_dump(
    committed_client: TestClient,
    committed_db: Database,
    keys: SqlKeyStore,
    clock: FixedClock,
    omni_compiled: CompiledPolicy,
) -> None:
    service = bearer(
        committed_key(committed_db, clock, omni_compiled, STAFF_NAME, "service_client")
    )
    people = ingest(committed_client, service)
    zebulon = people[PEOPLE[0]["email"]]
    used = committed_client.post(
        f"/v1/people/{zebulon}/use",
        headers=service,
        json={"purpose": "service_support", "categories": ["identity.name", "contact.email"]},
    )
    assert used.status_code == 200, used.text
    assert {v["value"] for v in used.json()["values"]} >= {PEOPLE[0]["name"], PEOPLE[0]["email"]}
    data_url: str = committed_db.url  # type: ignore[attr-defined]  # set by the fixture

    data = stored_bytes(data_url)
    wrapped = stored_bytes(keys.engine.url.render_as_string(hide_password=False))

    # The scan reads what is stored: names that are not personal data are there in clear.
    assert found_in(data, [STAFF_NAME, "sign_up", "correspondence"]) == [
        STAFF_NAME,
        "sign_up",
        "correspondence",
    ]
    assert b"data_keys" in wrapped
    assert found_in(data, seeded_values()) == []
    assert found_in(wrapped, seeded_values()) == []


# --- Associated data: a value is bound to its row and its person ----------------------------


def sign_up(client: TestClient, service: dict[str, str], person: dict[str, str]) -> str:
    response = client.post(
        "/v1/collect",
        headers=service,
        json={
            "collection_point": "sign_up",
            "fields": {"name": person["name"], "email": person["email"]},
        },
    )
    assert response.status_code == 201, response.text
    person_id: str = response.json()["person_id"]
    return person_id


def sealed_of(db: Database, person_id: str, field: str) -> tuple[int, bytes]:
    with db.reading() as session:
        row = session.execute(
            text("SELECT id, sealed FROM records WHERE person_id = :p AND field = :f"),
            {"p": person_id, "f": field},
        ).one()
    return int(row[0]), bytes(row[1])


def put_sealed(db: Database, record_id: int, sealed: bytes) -> None:
    with db.writing() as session:
        session.execute(
            text("UPDATE records SET sealed = :s WHERE id = :i"), {"s": sealed, "i": record_id}
        )


def use(client: TestClient, service: dict[str, str], person_id: str) -> Any:
    response = client.post(
        f"/v1/people/{person_id}/use",
        headers=service,
        json={"purpose": "service_support", "categories": ["identity.name", "contact.email"]},
    )
    assert response.status_code == 200, response.text
    return {v["field"]: v["value"] for v in response.json()["values"]}


def rejections(client: TestClient, officer: dict[str, str]) -> list[dict[str, Any]]:
    response = client.get(
        "/v1/audit", headers=officer, params={"action": "access:sealed_value:rejected"}
    )
    assert response.status_code == 200, response.text
    entries: list[dict[str, Any]] = response.json()["entries"]
    return entries


@pytest.mark.clause("C3")
def test_a_value_copied_onto_another_persons_row_does_not_decrypt(
    client: TestClient, db: Database, make_key: Callable[[str], str]
) -> None:
    service = bearer(make_key("service_client"))
    officer = bearer(make_key("privacy_officer"))
    zebulon = sign_up(client, service, PEOPLE[0])
    philippa = sign_up(client, service, PEOPLE[1])
    _, zebulon_name = sealed_of(db, zebulon, "name")
    philippa_row, _ = sealed_of(db, philippa, "name")

    put_sealed(db, philippa_row, zebulon_name)

    assert use(client, service, philippa) == {"email": PEOPLE[1]["email"]}
    assert use(client, service, zebulon) == {"name": PEOPLE[0]["name"], "email": PEOPLE[0]["email"]}
    [entry] = rejections(client, officer)
    assert entry["target"] == f"person:{philippa}"
    assert entry["details"] == {"unreadable": 1}


@pytest.mark.clause("C3")
def test_a_value_copied_onto_another_row_of_the_same_person_does_not_decrypt(
    client: TestClient, db: Database, make_key: Callable[[str], str]
) -> None:
    service = bearer(make_key("service_client"))
    officer = bearer(make_key("privacy_officer"))
    zebulon = sign_up(client, service, PEOPLE[0])
    _, email = sealed_of(db, zebulon, "email")
    name_row, _ = sealed_of(db, zebulon, "name")

    put_sealed(db, name_row, email)

    assert use(client, service, zebulon) == {"email": PEOPLE[0]["email"]}
    [entry] = rejections(client, officer)
    assert entry["details"] == {"unreadable": 1}


def test_an_altered_value_does_not_decrypt(
    client: TestClient, db: Database, make_key: Callable[[str], str]
) -> None:
    service = bearer(make_key("service_client"))
    zebulon = sign_up(client, service, PEOPLE[0])
    row, sealed = sealed_of(db, zebulon, "email")

    put_sealed(db, row, sealed[:-1] + bytes([sealed[-1] ^ 1]))

    assert use(client, service, zebulon) == {"name": PEOPLE[0]["name"]}
