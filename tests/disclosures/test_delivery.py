"""Delivering a disclosure, through HTTP: `mode: "deliver"` returns the values of exactly
the people disclosed, in exactly the categories disclosed, decrypted through `access`; a
refused or oversized delivery returns none; a retry delivers again; the audit entry counts
what was delivered and names no value (C21, C22, C24)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from charter.clock import FixedClock
from charter.consent.choices import set_choices
from charter.db import Database
from charter.policy.compiled import CompiledPolicy
from tests.conftest import bearer
from tests.disclosures.test_ledger import audited, body, ledger_rows

pytestmark = pytest.mark.clause("C21", "C22", "C24")

DISCLOSED = "access:personal_data:disclosed"


def delivery(**fields: Any) -> dict[str, Any]:
    """A delivery of e-mail addresses to OMNI's European affiliate for its marketing."""
    chosen = {
        "recipient": "omni_europe",
        "purpose": "promotional",
        "ground": "affiliates",
        "categories": ["contact.email"],
        "mode": "deliver",
    }
    return body(**{**chosen, **fields})


def delivered(answer: dict[str, Any]) -> dict[str, list[tuple[str, str, str, str]]]:
    """The delivered values by person: (category, field, collection point, value)."""
    return {
        person["person_id"]: [
            (v["category"], v["field"], v["collection_point"], v["value"]) for v in person["values"]
        ]
        for person in answer["delivered"]
    }


@pytest.fixture
def officer(make_key: Callable[..., str]) -> dict[str, str]:
    return bearer(make_key("privacy_officer", name="olivia"))


@pytest.fixture
def service(make_key: Callable[..., str]) -> dict[str, str]:
    return bearer(make_key("service_client"))


@pytest.fixture
def people(
    client: TestClient,
    db: Database,
    clock: FixedClock,
    omni_compiled: CompiledPolicy,
    service: dict[str, str],
) -> dict[str, str]:
    """Four users, each with a name, an e-mail address and a company; Ann ordered too (a
    second e-mail address, a postal address); Bob opted out of promotional use."""
    made: dict[str, str] = {}
    for name in ("ann", "bob", "cat", "dan"):
        response = client.post(
            "/v1/collect",
            headers=service,
            json={
                "collection_point": "sign_up",
                "person": {"visitor_id": f"v-{name}"},
                "fields": {
                    "name": f"{name.title()} Example",
                    "email": f"{name}@example.com",
                    "company": f"{name.title()} Widgets",
                },
            },
        )
        assert response.status_code == 201, response.text
        made[name] = response.json()["person_id"]
    clock.advance(dt.timedelta(hours=1))
    ordered = client.post(
        "/v1/collect",
        headers=service,
        json={
            "collection_point": "order",
            "person": {"person_id": made["ann"]},
            "fields": {
                "name": "Ann Example",
                "email": "ann.orders@example.com",
                "billing_address": "1 Example Road",
                "items": "2 x widget",
                "payment_reference": "PAYREF-ANN",
            },
        },
    )
    assert ordered.status_code == 201, ordered.text
    with db.writing() as session:
        set_choices(
            session,
            clock,
            omni_compiled,
            actor="test",
            person_id=made["bob"],
            choices={"purpose:promotional": False},
            method="api",
        )
    return made


def test_a_delivery_returns_exactly_the_disclosed_peoples_values_in_the_disclosed_categories(
    client: TestClient, db: Database, officer: dict[str, str], people: dict[str, str]
) -> None:
    ann, bob, cat = people["ann"], people["bob"], people["cat"]
    response = client.post(
        "/v1/disclosures", headers=officer, json=delivery(people=[ann, bob, cat])
    )
    assert response.status_code == 201, response.text
    answer = response.json()
    assert (answer["requested"], answer["disclosed"], answer["excluded"]) == (3, 2, 1)
    assert answer["exclusions"] == [{"person_id": bob, "code": "person_opted_out"}]
    # Ann's two addresses, oldest first; Cat's one; nothing of Bob, who was left out, nor of
    # Dan, who was not asked for; no name, company or postal address.
    assert delivered(answer) == {
        ann: [
            ("contact.email", "email", "sign_up", "ann@example.com"),
            ("contact.email", "email", "order", "ann.orders@example.com"),
        ],
        cat: [("contact.email", "email", "sign_up", "cat@example.com")],
    }
    first = answer["delivered"][0]["values"][0]
    assert first["source"] == "given"
    assert first["collected_at"]
    assert answer["unreadable"] == 0
    shown = response.text
    for absent in ("bob@", "dan@", "Example Road", "Widgets", "Ann Example", "PAYREF"):
        assert absent not in shown
    assert ledger_rows(db) == (1, 2)


def test_the_audit_entry_of_a_delivery_counts_the_values_and_names_none(
    client: TestClient, db: Database, officer: dict[str, str], people: dict[str, str]
) -> None:
    sent = delivery(people=[people["ann"], people["cat"]], categories=["identity", "contact"])
    response = client.post("/v1/disclosures", headers=officer, json=sent)
    assert response.status_code == 201, response.text
    answer = response.json()
    # What the recipient and the purpose both declare: the name and e-mail address, not
    # the company or the postal address.
    assert {v[0] for values in delivered(answer).values() for v in values} == {
        "identity.name",
        "contact.email",
    }
    [entry] = audited(db, DISCLOSED)
    assert entry["target"] == f"disclosure:{answer['disclosure_id']}"
    assert entry["details"]["people"] == 2
    assert entry["details"]["values"] == 6
    assert entry["details"]["unreadable"] == 0
    [recorded] = audited(db, "disclosures:disclosure:recorded")
    assert recorded["details"]["mode"] == "deliver"
    for logged in (entry, recorded):
        text = str(logged)
        assert "example.com" not in text
        assert "Example" not in text
        assert not any(person in text for person in people.values())


def test_a_recorded_disclosure_delivers_nothing(
    client: TestClient, db: Database, officer: dict[str, str], people: dict[str, str]
) -> None:
    response = client.post(
        "/v1/disclosures", headers=officer, json=delivery(people=[people["ann"]], mode="record")
    )
    assert response.status_code == 201, response.text
    assert response.json()["disclosed"] == 1
    assert response.json()["delivered"] == []
    assert "example.com" not in response.text
    assert audited(db, DISCLOSED) == []


def test_a_refused_delivery_returns_no_value(
    client: TestClient, db: Database, officer: dict[str, str], people: dict[str, str]
) -> None:
    payment = delivery(people=[people["ann"]], categories=["contact.email", "billing.payment"])
    response = client.post("/v1/disclosures", headers=officer, json=payment)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "category_not_for_recipient"
    assert "delivered" not in response.json()
    assert "example.com" not in response.text
    assert ledger_rows(db) == (0, 0)
    assert audited(db, DISCLOSED) == []
    [refused] = audited(db, "disclosures:disclosure:refused")
    assert refused["details"]["code"] == "category_not_for_recipient"


def test_a_retry_of_a_delivery_delivers_again_and_records_nothing_new(
    client: TestClient, db: Database, officer: dict[str, str], people: dict[str, str]
) -> None:
    sent = delivery(people=[people["cat"], people["ann"], people["bob"]])
    first = client.post("/v1/disclosures", headers=officer, json=sent)
    again = client.post("/v1/disclosures", headers=officer, json=sent)
    assert first.status_code == again.status_code == 201, again.text
    assert first.json()["replayed"] is False
    assert again.json()["replayed"] is True
    assert delivered(again.json()) == delivered(first.json())
    assert set(delivered(again.json())) == {people["ann"], people["cat"]}
    assert again.json()["exclusions"] == first.json()["exclusions"]
    assert ledger_rows(db) == (1, 2)
    assert len(audited(db, "disclosures:disclosure:recorded")) == 1
    # Each delivery is audited, both against the one disclosure.
    entries = audited(db, DISCLOSED)
    assert [e["target"] for e in entries] == [f"disclosure:{first.json()['disclosure_id']}"] * 2
    assert {e["details"]["values"] for e in entries} == {3}
    # The same key with the record mode is another request.
    other = client.post("/v1/disclosures", headers=officer, json={**sent, "mode": "record"})
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_key_reused"


def test_a_delivery_of_more_than_1000_people_is_refused_whole(
    client: TestClient, db: Database, officer: dict[str, str], people: dict[str, str]
) -> None:
    many = [people["ann"], *(f"nobody-{number}" for number in range(1000))]
    response = client.post("/v1/disclosures", headers=officer, json=delivery(people=many))
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "delivery_too_large"
    assert "example.com" not in response.text
    assert ledger_rows(db) == (0, 0)
    assert audited(db, DISCLOSED) == []
    # The same people recorded, not delivered, are fine.
    recorded = client.post(
        "/v1/disclosures", headers=officer, json=delivery(people=many, mode="record")
    )
    assert recorded.status_code == 201, recorded.text
    assert recorded.json()["disclosed"] == 1


def test_a_selection_too_large_to_deliver_is_refused_and_left_unused(
    client: TestClient, db: Database, officer: dict[str, str], people: dict[str, str]
) -> None:
    made = client.post("/v1/disclosures/selections", headers=officer)
    selection = made.json()["selection_id"]
    many = [people["ann"], *(f"nobody-{number}" for number in range(1000))]
    filled = client.post(
        f"/v1/disclosures/selections/{selection}/people", headers=officer, json={"people": many}
    )
    assert filled.json()["size"] == 1001
    response = client.post(
        "/v1/disclosures", headers=officer, json=delivery(people=[], selection=selection)
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "delivery_too_large"
    assert ledger_rows(db) == (0, 0)
    state = client.get(f"/v1/disclosures/selections/{selection}", headers=officer).json()
    assert state["used_by"] is None


def test_a_delivery_of_1000_people_none_of_them_allowed_delivers_an_empty_list(
    client: TestClient, db: Database, officer: dict[str, str], people: dict[str, str]
) -> None:
    nobody = [people["bob"], *(f"nobody-{number}" for number in range(999))]
    response = client.post("/v1/disclosures", headers=officer, json=delivery(people=nobody))
    assert response.status_code == 201, response.text
    answer = response.json()
    assert (answer["requested"], answer["disclosed"], answer["excluded"]) == (1000, 0, 1000)
    assert answer["delivered"] == []
    assert "example.com" not in response.text
    assert ledger_rows(db) == (1, 0)
