"""Carrying out verified requests through HTTP (C25, C22, C23): an opt-out becomes the
person's choice and stops the next disclosure to an advertiser, an erasure says what it
kept, a know request lists categories and recipients from the ledger, an unknown person is
told nothing was found, and nothing is done for an unverified request."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from charter.audit.reading import page_entries
from charter.db import Database
from charter.mail.models import OutboxMessage
from charter.mail.outbox import opened
from charter.requests.models import RightsRequest
from tests.vault.calls import sign_up

pytestmark = pytest.mark.clause("C25")


def verified(client: TestClient, service: dict[str, str], kind: str, person: str) -> str:
    made = client.post(
        "/v1/requests",
        headers=service,
        json={"type": kind, "person_id": person, "reauthenticated": True},
    )
    assert made.status_code == 201, made.text
    assert made.json()["state"] == "verified"
    request_id: str = made.json()["request_id"]
    return request_id


def disclose(
    client: TestClient, officer: dict[str, str], person: str, key: str, **fields: Any
) -> dict[str, Any]:
    body = {
        "recipient": "google_ads",
        "purpose": "promotional",
        "categories": ["cookie.id"],
        "people": [person],
        "idempotency_key": key,
        **fields,
    }
    response = client.post("/v1/disclosures", headers=officer, json=body)
    assert response.status_code == 201, response.text
    answer: dict[str, Any] = response.json()
    return answer


def test_an_opt_out_request_stops_the_next_disclosure_to_an_advertiser(
    client: TestClient, db: Database, service: dict[str, str], officer: dict[str, str]
) -> None:
    person = sign_up(client, service, "v-ful-1", "ines@example.com")
    assert disclose(client, officer, person, "ads-before")["disclosed"] == 1
    request_id = verified(client, service, "opt_out_sale_sharing", person)

    done = client.post(f"/v1/requests/{request_id}/fulfil", headers=officer)
    assert done.status_code == 200, done.text
    assert done.json()["request"]["state"] == "answered"
    assert done.json()["recipients"] == ["google_ads"]

    after = disclose(client, officer, person, "ads-after")
    assert (after["disclosed"], after["codes"]) == (0, {"opted_out_of_sale_or_sharing": 1})
    choices = client.get(f"/v1/people/{person}/choices", headers=officer).json()
    assert choices["current"]["purpose:promotional"] is False
    with db.reading() as session:
        [notice] = page_entries(session, action="requests:recipients:opt_out_notice", limit=10)
    assert notice.as_json()["details"]["recipients"] == ["google_ads"]


def test_a_deletion_erases_the_person_and_says_what_was_kept(
    client: TestClient, service: dict[str, str], officer: dict[str, str]
) -> None:
    person = sign_up(client, service, "v-ful-2", "ines@example.com")
    disclose(client, officer, person, "ads-1")
    request_id = verified(client, service, "delete", person)

    done = client.post(f"/v1/requests/{request_id}/fulfil", headers=officer).json()
    assert done["request"]["state"] == "answered"
    assert done["response"].startswith("erased: ")
    assert any("ledger of disclosures" in kept for kept in done["kept"])
    assert done["recipients"] == ["google_ads"]
    used = client.post(
        f"/v1/people/{person}/use",
        headers=service,
        json={"purpose": "service_support", "categories": ["contact.email"]},
    )
    assert used.json()["decision"]["code"] == "person_erased"


def test_a_know_request_lists_the_categories_sources_and_recipients(
    client: TestClient, service: dict[str, str], officer: dict[str, str]
) -> None:
    person = sign_up(client, service, "v-ful-3", "ines@example.com")
    disclose(client, officer, person, "ads-1")
    request_id = verified(client, service, "know_categories", person)

    report = client.post(f"/v1/requests/{request_id}/fulfil", headers=officer).json()["report"]
    assert {c["id"] for c in report["categories"]} >= {"contact.email", "identity.name"}
    assert report["sources"] == ["given"]
    assert "registration_authentication" in report["purposes"]
    assert report["recipients"] == [{"id": "google_ads", "name": "Google LLC (Google Ads)"}]
    assert "ines@example.com" not in str(report)


def test_a_request_about_nobody_charter_knows_is_answered_nothing_found(
    client: TestClient, service: dict[str, str], officer: dict[str, str]
) -> None:
    made = client.post(
        "/v1/requests",
        headers=service,
        json={"type": "opt_out_sale_sharing", "email": "stranger@example.com"},
    ).json()
    done = client.post(f"/v1/requests/{made['request_id']}/fulfil", headers=officer).json()
    assert done["response"] == "no personal information found"
    assert done["request"]["state"] == "answered"


def test_nothing_is_done_for_an_unverified_deletion(
    client: TestClient, service: dict[str, str], officer: dict[str, str]
) -> None:
    person = sign_up(client, service, "v-ful-4", "ines@example.com")
    made = client.post(
        "/v1/requests",
        headers=service,
        json={"type": "delete", "person_id": person, "email": "ines@example.com"},
    ).json()
    refused = client.post(f"/v1/requests/{made['request_id']}/fulfil", headers=officer)
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "not_verified")
    used = client.post(
        f"/v1/people/{person}/use",
        headers=service,
        json={"purpose": "service_support", "categories": ["contact.email"]},
    )
    assert used.json()["decision"]["allowed"] is True


def test_the_answer_goes_to_the_address_the_request_gave_which_is_then_dropped(
    app: FastAPI, client: TestClient, db: Database, service: dict[str, str], officer: dict[str, str]
) -> None:
    person = sign_up(client, service, "v-ful-5", "ines@example.com")
    made = client.post(
        "/v1/requests",
        headers=service,
        json={
            "type": "know_categories",
            "person_id": person,
            "reauthenticated": True,
            "email": "ines@example.com",
        },
    ).json()
    done = client.post(f"/v1/requests/{made['request_id']}/fulfil", headers=officer).json()
    assert done["mailed"] is True

    with db.reading() as session:
        [row] = session.scalars(
            select(OutboxMessage).where(OutboxMessage.template == "requests:request_answered")
        ).all()
        message = opened(app.state.runtime.outbox, row)
        request = session.get_one(RightsRequest, made["request_id"])
        assert (request.reply_sealed, request.email_index) == (None, None)
    assert message.to == "ines@example.com"
    assert row.person_id == person
    assert "  - E-mail address\n" in message.text
    assert "Google" not in message.text  # disclosed to no one
    assert "OMNI disclosed it to no one." in message.text


def test_a_shine_the_light_request_by_the_public_intake_is_answered_with_the_report(
    app: FastAPI, client: TestClient, db: Database, service: dict[str, str], officer: dict[str, str]
) -> None:
    person = sign_up(client, service, "v-ful-6", "ines@example.com")
    asked = client.post(
        "/v1/public/requests", json={"type": "shine_the_light", "email": "ines@example.com"}
    )
    assert asked.status_code == 202
    [request] = client.get("/v1/requests", headers=officer).json()["requests"]
    assert (request["person_id"], request["report_year"]) == (person, 2025)
    refused = client.post(f"/v1/requests/{request['request_id']}/fulfil", headers=officer)
    assert refused.json()["error"]["code"] == "not_verified"

    with db.reading() as session:
        [row] = session.scalars(
            select(OutboxMessage).where(OutboxMessage.template == "requests:verify_request")
        ).all()
        link = opened(app.state.runtime.outbox, row).text.split("http://127.0.0.1:8000")[1]
    assert client.get(link.split()[0]).status_code == 200

    done = client.post(f"/v1/requests/{request['request_id']}/fulfil", headers=officer).json()
    assert done["request"]["state"] == "answered"
    assert done["mailed"] is True
    with db.reading() as session:
        [report] = session.scalars(
            select(OutboxMessage).where(OutboxMessage.template == "requests:stl_report")
        ).all()
        message = opened(app.state.runtime.outbox, report)
    assert message.to == "ines@example.com"
    assert "2025" in message.text


def test_a_correction_replaces_the_value_and_erases_the_old_one(
    client: TestClient, db: Database, service: dict[str, str], officer: dict[str, str]
) -> None:
    person = sign_up(client, service, "v-ful-7", "old@example.com")
    made = client.post(
        "/v1/requests",
        headers=service,
        json={"type": "correct", "person_id": person, "reauthenticated": True, "field": "email"},
    ).json()
    done = client.post(
        f"/v1/requests/{made['request_id']}/fulfil",
        headers=officer,
        json={"value": "new@example.com"},
    )
    assert done.status_code == 200, done.text
    assert done.json()["response"] == "corrected: email (1 replaced)"

    used = client.post(
        f"/v1/people/{person}/use",
        headers=service,
        json={"purpose": "service_support", "categories": ["contact.email"]},
    ).json()
    assert [v["value"] for v in used["values"]] == ["new@example.com"]
    found = client.post("/v1/people/lookup", headers=officer, json={"email": "new@example.com"})
    assert [p["person_id"] for p in found.json()["people"]] == [person]
    gone = client.post("/v1/people/lookup", headers=officer, json={"email": "old@example.com"})
    assert gone.json()["people"] == []
    with db.reading() as session:
        [entry] = page_entries(session, action="vault:field:corrected", limit=10)
    assert "example.com" not in str(entry.as_json())


def test_a_correction_of_the_address_that_verified_it_is_refused(
    app: FastAPI, client: TestClient, db: Database, service: dict[str, str], officer: dict[str, str]
) -> None:
    person = sign_up(client, service, "v-ful-8", "old@example.com")
    made = client.post(
        "/v1/requests",
        headers=service,
        json={"type": "correct", "person_id": person, "email": "old@example.com", "field": "email"},
    ).json()
    with db.reading() as session:
        [row] = session.scalars(
            select(OutboxMessage).where(OutboxMessage.template == "requests:verify_request")
        ).all()
        link = opened(app.state.runtime.outbox, row).text.split("http://127.0.0.1:8000")[1]
    assert client.get(link.split()[0]).status_code == 200
    refused = client.post(
        f"/v1/requests/{made['request_id']}/fulfil",
        headers=officer,
        json={"value": "new@example.com"},
    )
    assert (refused.status_code, refused.json()["error"]["code"]) == (
        409,
        "verified_by_the_corrected_field",
    )
