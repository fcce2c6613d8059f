"""What is stored stays readable, or reads as unreadable: never a 500.

The security review found 500s for values the database cannot hold (a 200-character customer
id, a NUL), a stored event time that broke every later read of the person, labels that could
be changed in the database to move a value to another reader, and damaged ciphertext or keys
that failed the whole request and lost its audit entry (issue 16, items 3 to 6 and 10)."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from charter.audit.models import AuditEntry
from charter.clock import FixedClock
from charter.db import Database
from charter.jobs.procedures import start_procedure
from charter.staff.models import ApiKey, StaffMember
from charter.vault.keystore import SqlKeyStore
from charter.vault.models import Person, Record
from charter.vault.reseal import reseal_old_values
from charter.vault.sealing import event_ad, legacy_record_ad, record_ad
from charter.web.errors import keep_tracebacks_out_of_logs
from tests.conftest import bearer
from tests.vault.calls import use

Headers = dict[str, str]
NAME = "Winifred Example"


def refusal(response: Any) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


def sign_up(client: TestClient, service: Headers, email: str = "winifred@example.com") -> str:
    response = client.post(
        "/v1/collect",
        headers=service,
        json={"collection_point": "sign_up", "fields": {"name": NAME, "email": email}},
    )
    assert response.status_code == 201, response.text
    person: str = response.json()["person_id"]
    return person


def execute(db: Database, sql: str, **params: object) -> None:
    with db.writing() as session:
        session.execute(sa.text(sql), params)


def actions(db: Database) -> list[str]:
    with db.reading() as session:
        return list(session.scalars(sa.select(AuditEntry.action).order_by(AuditEntry.seq)))


# --- Lengths and NUL (item 3) ---------------------------------------------------------------


def _column(model: type[Any], name: str) -> int:
    return int(model.__table__.c[name].type.length)


def test_request_limits_follow_the_columns_that_store_them(app: FastAPI) -> None:
    schema = app.openapi()
    components = schema["components"]["schemas"]

    def field(model: str, name: str) -> dict[str, Any]:
        found: dict[str, Any] = components[model]["properties"][name]
        return next((s for s in found.get("anyOf", []) if s.get("type") == "string"), found)

    def path_param(path: str, method: str, name: str) -> dict[str, Any]:
        operation = schema["paths"][path][method]
        found: dict[str, Any] = next(p for p in operation["parameters"] if p["name"] == name)
        return found["schema"]

    expected = {
        ("Who", "customer_id"): _column(Person, "customer_id"),
        ("Who", "person_id"): _column(Person, "id"),
        ("CollectBody", "collection_point"): _column(Record, "collection_point"),
        ("CollectBody", "source_name"): _column(Record, "source_name"),
        ("NewStaff", "name"): _column(StaffMember, "name"),
        ("NewStaff", "role"): _column(StaffMember, "role"),
        ("DecisionBody", "person_id"): _column(Person, "id"),
    }
    for (model, name), length in expected.items():
        assert field(model, name)["maxLength"] == length, (model, name)
    fields = components["CollectBody"]["properties"]["fields"]["propertyNames"]
    assert fields["maxLength"] == _column(Record, "field")
    assert path_param("/v1/people/{person_id}/use", "post", "person_id")["maxLength"] == 32
    assert path_param("/v1/staff/{name}/keys", "post", "name")["maxLength"] == _column(
        StaffMember, "name"
    )
    assert path_param("/v1/keys/{key_id}", "delete", "key_id")["maxLength"] == _column(
        ApiKey, "key_id"
    )


def test_a_value_longer_than_its_column_is_422_not_500(
    client: TestClient, service: Headers, make_key: Callable[[str], str]
) -> None:
    officer = bearer(make_key("privacy_officer"))
    long_customer = client.post(
        "/v1/collect",
        headers=service,
        json={
            "collection_point": "sign_up",
            "person": {"customer_id": "c" * 200},
            "fields": {"name": NAME, "email": "winifred@example.com"},
        },
    )
    long_person = client.put(f"/v1/people/{'p' * 200}/choices", headers=service, json={})
    long_name = client.post("/v1/staff", headers=officer, json={"name": "a" * 65, "role": "x"})

    for response in (long_customer, long_person, long_name):
        assert response.status_code == 422, response.text


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/collect", {"collection_point": "sign_up", "fields": {"name": "A\u0000"}}),
        ("POST", "/v1/collect", {"collection_point": "sign_up", "fields": {"n\u0000": "A"}}),
        ("PUT", "/v1/people/someone%00/choices", {}),
        ("GET", "/v1/audit?action=x%00y", None),
        ("POST", "/v1/staff", {"name": "sam\u0000", "role": "billing"}),
        (
            "POST",
            "/v1/events",
            {
                "idempotency_key": "nul-events-1",
                "events": [
                    {"type": "click", "time": "2026-11-25T00:00:00Z", "visitor_id": "v\u0000"}
                ],
            },
        ),
    ],
)
def test_a_nul_character_anywhere_is_422(
    client: TestClient,
    make_key: Callable[[str], str],
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    headers = {**bearer(make_key("privacy_officer")), "content-type": "application/json"}
    if path.startswith("/v1/events"):
        headers = {**bearer(make_key("service_client")), "content-type": "application/json"}
    content = json.dumps(body).encode() if body is not None else None

    response = client.request(method, path, content=content, headers=headers)

    assert refusal(response) == (422, "nul_character")


def test_sql_and_its_parameters_never_reach_the_log(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    keep_tracebacks_out_of_logs()
    secret = "winifred.secret@example.com"
    with pytest.raises(sa.exc.SQLAlchemyError) as failure, db.reading() as session:
        session.execute(sa.text("SELECT * FROM no_such_table WHERE x = :x"), {"x": secret})
    assert secret not in str(failure.value)  # hide_parameters on every engine

    with caplog.at_level(logging.ERROR, logger="uvicorn.error"):
        try:
            raise failure.value
        except sa.exc.SQLAlchemyError:
            logging.getLogger("uvicorn.error").exception("Exception in ASGI application")

    [logged] = caplog.records
    assert logged.exc_info is None
    assert "no_such_table" not in caplog.text
    assert logged.getMessage().endswith(f"({type(failure.value).__name__})")


def event_binding(event: Any, person: str) -> tuple[int, str, str, str]:
    return event.uid, person, event.kind, event.collection_point


# --- Event times (item 4) -------------------------------------------------------------------


@pytest.mark.parametrize("time", ["0001-01-01T00:00:00+01:00", "1999-12-31T23:59:59Z"])
def test_an_event_time_out_of_range_is_refused(
    client: TestClient, service: Headers, time: str, clock: FixedClock
) -> None:
    ahead = (clock.now() + dt.timedelta(days=2)).isoformat()
    for when in (time, ahead):
        response = client.post(
            "/v1/events",
            headers=service,
            json={
                "idempotency_key": f"times-{when[:4]}",
                "events": [{"type": "click", "time": when, "visitor_id": "vid-times"}],
            },
        )
        assert refusal(response) == (422, "time_out_of_range")


def test_a_stored_event_that_does_not_decode_is_counted_unreadable(
    client: TestClient, service: Headers, db: Database, keys: SqlKeyStore
) -> None:
    person = sign_up(client, service)
    posted = client.post(
        "/v1/events",
        headers=service,
        json={
            "idempotency_key": "decodes-1",
            "events": [
                {"type": "click", "time": "2026-11-25T09:00:00Z", "person_id": person, "ip": ip}
                for ip in ("192.0.2.1", "192.0.2.2")
            ],
        },
    )
    assert posted.status_code == 200, posted.text
    # An event stored before times were bounded: sealed properly, holding year 1.
    with db.writing() as session:
        event = session.execute(sa.text("SELECT uid, kind, collection_point FROM events")).first()
        assert event is not None
        sealer = keys.sealer(person)
        assert sealer is not None
        payload = orjson.dumps([-(10**17), "192.0.2.9", None, None, None, None, None, None])
        session.execute(
            sa.text("UPDATE events SET sealed = :s WHERE uid = :u"),
            {"s": sealer.seal(payload, event_ad(*event_binding(event, person))), "u": event.uid},
        )

    used = use(client, service, person, "registration_authentication", ["network.ip"])

    assert used.status_code == 200, used.text
    assert used.json()["unreadable"] == 1
    assert [v["value"] for v in used.json()["values"]] in (["192.0.2.1"], ["192.0.2.2"])


# --- Labels sealed with the value (item 5) --------------------------------------------------


@pytest.mark.clause("C2", "C6")
@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("category", "contact.company"),
        ("collection_point", "sign_up"),
        ("field", "display_name"),
        ("source", "automatic"),
        ("source_name", "service_providers"),
    ],
)
def test_a_relabelled_record_no_longer_decrypts(
    client: TestClient,
    service: Headers,
    *,
    db: Database,
    make_key: Callable[[str], str],
    column: str,
    value: str,
) -> None:
    """The review turned a job application into data a privacy officer's `use` returned by
    changing its labels in the database."""
    applicant = client.post(
        "/v1/collect",
        headers=service,
        json={
            "collection_point": "job_application",
            "fields": {"name": "Abe Applicant", "email": "abe@example.com", "resume": "Typist"},
        },
    ).json()["person_id"]
    recruiter = bearer(make_key("recruiter"))
    before = use(client, recruiter, applicant, "described_obligations", ["identity.name"])
    assert [v["value"] for v in before.json()["values"]] == ["Abe Applicant"]

    execute(
        db,
        f"UPDATE records SET {column} = :v WHERE person_id = :p AND field = 'name'",  # noqa: S608
        v=value,
        p=applicant,
    )
    officer = bearer(make_key("privacy_officer"))
    category = value if column == "category" else "identity.name"
    as_officer = use(client, officer, applicant, "contract_obligations", [category])
    as_recruiter = use(client, recruiter, applicant, "described_obligations", [category])

    for response in (as_officer, as_recruiter):
        assert response.status_code == 200, response.text
        assert "Abe Applicant" not in response.text
    assert as_officer.json()["unreadable"] + as_recruiter.json()["unreadable"] >= 1


@pytest.mark.parametrize(
    ("column", "value"), [("kind", "page_view"), ("collection_point", "log_data")]
)
def test_a_relabelled_event_no_longer_decrypts(
    client: TestClient, service: Headers, db: Database, column: str, value: str
) -> None:
    person = sign_up(client, service)
    client.post(
        "/v1/events",
        headers=service,
        json={
            "idempotency_key": "relabel-1",
            "events": [
                {
                    "type": "click",
                    "time": "2026-11-25T09:00:00Z",
                    "person_id": person,
                    "ip": "192.0.2.5",
                }
            ],
        },
    )
    execute(db, f"UPDATE events SET {column} = :v", v=value)  # noqa: S608 - our column names

    used = use(client, service, person, "registration_authentication", ["network.ip"])

    assert used.json()["values"] == []
    assert used.json()["unreadable"] == 1


def test_values_sealed_before_the_labels_were_bound_are_sealed_again_at_start(
    client: TestClient,
    service: Headers,
    db: Database,
    keys: SqlKeyStore,
    clock: FixedClock,
) -> None:
    person = sign_up(client, service)
    sealer = keys.sealer(person)
    assert sealer is not None
    # As the migration leaves an older database: values bound to row and person only, at seal
    # version 1, and a `reseal` procedure recorded for the next start.
    with db.writing() as session:
        for row in session.scalars(sa.select(Record).where(Record.person_id == person)):
            plain = sealer.open(row.sealed, record_ad(row))
            row.sealed = sealer.seal(plain, legacy_record_ad(row.id, row.person_id))
            row.seal_version = 1
        start_procedure(
            session, clock, kind="reseal", subject="vault:values", actor="migration", details={}
        )
    assert (
        use(client, service, person, "registration_authentication", ["identity.name"]).json()[
            "unreadable"
        ]
        == 1
    )

    assert reseal_old_values(db, keys, clock) == 2
    assert reseal_old_values(db, keys, clock) == 0  # done once

    used = use(client, service, person, "registration_authentication", ["identity.name"])
    assert [v["value"] for v in used.json()["values"]] == [NAME]
    assert "vault:values:resealed" in actions(db)


# --- Damaged ciphertext and keys (item 6) ---------------------------------------------------


def test_a_damaged_value_is_unreadable_and_the_use_still_recorded(
    client: TestClient, service: Headers, db: Database
) -> None:
    person = sign_up(client, service)
    execute(
        db,
        "UPDATE records SET sealed = :s WHERE person_id = :p AND field = 'name'",
        s=b"short",
        p=person,
    )

    used = use(
        client, service, person, "registration_authentication", ["identity.name", "contact.email"]
    )

    assert used.status_code == 200, used.text
    assert used.json()["unreadable"] == 1
    assert [v["category"] for v in used.json()["values"]] == ["contact.email"]
    assert actions(db)[-2:] == ["access:personal_data:used", "access:sealed_value:rejected"]


def tamper_with_key(keys: SqlKeyStore, person: str) -> None:
    """Flip a bit of the person's wrapped data key in the key store's database."""
    with keys.engine.begin() as connection:
        wrapped = connection.execute(
            sa.text("SELECT wrapped FROM data_keys WHERE person_id = :p"), {"p": person}
        ).scalar_one()
        flipped = bytes(wrapped[:-1]) + bytes([wrapped[-1] ^ 1])
        connection.execute(
            sa.text("UPDATE data_keys SET wrapped = :w WHERE person_id = :p"),
            {"w": flipped, "p": person},
        )
    keys._cache.clear()


def answer_survey(client: TestClient, service: Headers, person: str) -> Any:
    """The person answers the survey: a write that seals a new value under their key."""
    return client.post(
        "/v1/collect",
        headers=service,
        json={
            "collection_point": "survey",
            "person": {"person_id": person},
            "fields": {"answers": "fine"},
        },
    )


def test_a_tampered_data_key_makes_the_person_unreadable_not_a_500(
    client: TestClient, service: Headers, db: Database, keys: SqlKeyStore
) -> None:
    person = sign_up(client, service)
    other = sign_up(client, service, "other@example.com")
    tamper_with_key(keys, person)

    used = use(client, service, person, "registration_authentication", ["identity.name"])
    more = answer_survey(client, service, person)
    fine = use(client, service, other, "registration_authentication", ["identity.name"])

    assert used.status_code == 200, used.text
    assert (used.json()["values"], used.json()["unreadable"]) == ([], 1)
    assert {"access:personal_data:used", "vault:data_key:damaged"} <= set(actions(db))
    assert refusal(more) == (503, "key_damaged")
    assert [v["value"] for v in fine.json()["values"]] == [NAME]


def test_a_tampered_key_found_while_writing_is_refused_and_recorded_in_its_own_unit(
    client: TestClient, service: Headers, db: Database, keys: SqlKeyStore
) -> None:
    """The write that finds the damage rolls back; the audit log still keeps the find."""
    person = sign_up(client, service)
    tamper_with_key(keys, person)
    before = actions(db)

    more = answer_survey(client, service, person)
    events = client.post(
        "/v1/events",
        headers=service,
        json={
            "idempotency_key": "damaged-key-0001",
            "events": [
                {"type": "click", "time": "2026-11-25T09:00:00Z", "person_id": person},
            ],
        },
    )

    assert refusal(more) == (503, "key_damaged")
    assert refusal(events) == (503, "key_damaged")
    with db.reading() as session:
        found = session.scalars(
            sa.select(AuditEntry).where(AuditEntry.action == "vault:data_key:damaged")
        ).all()
        surveys = session.scalar(
            sa.select(sa.func.count()).select_from(Record).where(Record.person_id == person)
        )
    assert [(e.target, e.outcome, json.loads(e.details)) for e in found] == [
        (f"person:{person}", "failed", {"keys": 1, "while": "writing"})
    ] * 2
    assert all(e.actor.startswith("staff:") for e in found)
    assert actions(db)[len(before) :] == ["vault:data_key:damaged"] * 2
    assert surveys == 2, "the sign-up's name and address, and no survey answer"


# --- Paging (item 10) -----------------------------------------------------------------------


def test_a_use_is_paged_with_a_cursor(
    client: TestClient, service: Headers, clock: FixedClock
) -> None:
    person = sign_up(client, service)
    for number in range(4):
        clock.advance(dt.timedelta(minutes=1))
        client.post(
            "/v1/collect",
            headers=service,
            json={
                "collection_point": "survey",
                "person": {"person_id": person},
                "fields": {"answers": f"answer {number}"},
            },
        )
    client.post(
        "/v1/events",
        headers=service,
        json={
            "idempotency_key": "paging-1",
            "events": [
                {
                    "type": "click",
                    "time": "2026-11-25T09:00:00Z",
                    "person_id": person,
                    "item": f"i{n}",
                }
                for n in range(3)
            ],
        },
    )

    def page(after: str | None) -> dict[str, Any]:
        response = client.post(
            f"/v1/people/{person}/use",
            headers=service,
            json={
                "purpose": "service_improvement",
                "categories": ["survey.answers", "usage.clicks"],
                "limit": 3,
                "after": after,
            },
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    seen, after, pages = [], None, 0
    while True:
        body = page(after)
        pages += 1
        seen += [v["value"] for v in body["values"]]
        after = body["next"]
        if after is None:
            break
    assert pages == 3
    assert seen[:4] == [f"answer {n}" for n in range(4)]
    assert sorted(seen[4:]) == ["i0", "i1", "i2"]
    bad = client.post(
        f"/v1/people/{person}/use",
        headers=service,
        json={"purpose": "service_improvement", "categories": ["usage.clicks"], "after": "x~1"},
    )
    assert refusal(bad) == (422, "invalid_cursor")


def test_the_choice_history_is_paged(client: TestClient, service: Headers) -> None:
    person = sign_up(client, service)
    for topic in ("purpose:surveys", "purpose:promotional", "cookie:performance"):
        client.put(
            f"/v1/people/{person}/choices", headers=service, json={"choices": {topic: False}}
        )

    first = client.get(
        f"/v1/people/{person}/choices", headers=service, params={"history_limit": 2}
    ).json()
    second = client.get(
        f"/v1/people/{person}/choices",
        headers=service,
        params={"history_limit": 2, "history_after": first["history_next"]},
    ).json()

    assert [h["topic"] for h in first["history"]] == ["purpose:surveys", "purpose:promotional"]
    assert [h["topic"] for h in second["history"]] == ["cookie:performance"]
    assert second["history_next"] is None
    assert len(first["current"]) == 3
