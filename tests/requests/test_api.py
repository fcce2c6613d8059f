"""Rights requests through HTTP (C25): a service's request verified by re-authentication,
a person's request verified by the single-use link mailed to them (forged, expired and used
links refused, audited), a public intake that reveals nothing, and the reads by due date."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from charter.audit.reading import page_entries
from charter.clock import FixedClock
from charter.db import Database
from charter.mail.models import OutboxMessage
from charter.mail.outbox import opened
from tests.vault.calls import sign_up

pytestmark = pytest.mark.clause("C25")


def mailed_links(app: FastAPI, db: Database) -> list[str]:
    """The verification links in the outbox, oldest first."""
    with db.reading() as session:
        rows = session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.template == "requests:verify_request")
            .order_by(OutboxMessage.created_at)
        ).all()
        texts = [opened(app.state.runtime.outbox, row).text for row in rows]
    return [re.search(r"http\S+", text).group(0) for text in texts]  # type: ignore[union-attr]


def path_of(link: str) -> str:
    return link.removeprefix("http://127.0.0.1:8000")


def audited(db: Database, action: str) -> list[dict[str, Any]]:
    with db.reading() as session:
        return [entry.as_json() for entry in page_entries(session, action=action, limit=1000)]


def test_a_service_request_after_reauthentication_is_verified_at_once(
    client: TestClient, service: dict[str, str], officer: dict[str, str]
) -> None:
    person = sign_up(client, service, "v-req-1", "ines@example.com")
    response = client.post(
        "/v1/requests",
        headers=service,
        json={"type": "know_categories", "person_id": person, "reauthenticated": True},
    )
    assert response.status_code == 201, response.text
    made = response.json()
    assert (made["state"], made["verification"], made["person_id"]) == (
        "verified",
        "reauthenticated",
        person,
    )
    # CCPA: answer within 45 days; confirm within 10 business days (Thanksgiving skipped).
    assert made["received_at"] == "2026-11-25T12:00:00Z"
    assert made["due_at"] == "2027-01-09T12:00:00Z"
    assert made["confirm_by"] == "2026-12-10T12:00:00Z"

    detail = client.get(f"/v1/requests/{made['request_id']}", headers=officer).json()
    assert [s["to_state"] for s in detail["steps"]] == ["received", "verified"]


def test_a_reauthentication_without_the_person_is_refused(
    client: TestClient, service: dict[str, str]
) -> None:
    response = client.post(
        "/v1/requests",
        headers=service,
        json={"type": "delete", "email": "ines@example.com", "reauthenticated": True},
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "reauthentication_needs_person"


def test_a_person_confirms_by_the_link_once_and_a_used_or_forged_link_is_refused(
    app: FastAPI, client: TestClient, db: Database, officer: dict[str, str]
) -> None:
    answered = client.post(
        "/v1/public/requests", json={"type": "delete", "email": "ines@example.com"}
    )
    assert answered.status_code == 202, answered.text
    [link] = mailed_links(app, db)

    confirmed = client.get(path_of(link))
    assert confirmed.status_code == 200
    assert "Your request is confirmed" in confirmed.text
    [request] = client.get("/v1/requests", headers=officer).json()["requests"]
    assert (request["state"], request["verification"]) == ("verified", "email_link")

    again = client.get(path_of(link))
    assert again.status_code == 400
    assert 'id="code">link_used<' in again.text
    forged = client.get(path_of(link)[:-3] + "abc")
    assert 'id="code">link_invalid<' in forged.text
    codes = [e["details"]["code"] for e in audited(db, "requests:verification:refused")]
    assert codes == ["link_used", "link_invalid"]
    assert "ines@example.com" not in str(audited(db, "requests:request:received"))


def test_a_link_older_than_a_day_is_refused_and_the_request_stays_unverified(
    app: FastAPI, client: TestClient, db: Database, clock: FixedClock, officer: dict[str, str]
) -> None:
    client.post("/v1/public/requests", json={"type": "know_specific", "email": "x@example.com"})
    [link] = mailed_links(app, db)
    clock.advance(dt.timedelta(hours=24, seconds=1))
    expired = client.get(path_of(link))
    assert expired.status_code == 400
    assert 'id="code">link_expired<' in expired.text
    [request] = client.get("/v1/requests", headers=officer).json()["requests"]
    assert request["state"] == "awaiting_verification"


def test_the_public_intake_answers_alike_for_a_known_and_an_unknown_address(
    client: TestClient, service: dict[str, str], officer: dict[str, str]
) -> None:
    sign_up(client, service, "v-req-2", "known@example.com")
    known = client.post(
        "/v1/public/requests", json={"type": "delete", "email": "known@example.com"}
    )
    unknown = client.post(
        "/v1/public/requests", json={"type": "delete", "email": "nobody-known@example.com"}
    )
    assert (known.status_code, known.json()) == (unknown.status_code, unknown.json())
    found = client.get("/v1/requests", headers=officer).json()["requests"]
    assert sorted(r["person_id"] is None for r in found) == [False, True]


def test_the_public_intake_is_rate_limited(client: TestClient, app: FastAPI) -> None:
    limit = app.state.runtime.settings.public_requests_per_minute
    statuses = [
        client.post(
            "/v1/public/requests", json={"type": "opt_out_sale_sharing", "email": "a@example.com"}
        ).status_code
        for _ in range(limit + 1)
    ]
    assert statuses[-1] == 429
    assert set(statuses[:-1]) == {202}


def test_an_opt_out_needs_no_verification_and_is_due_in_15_business_days(
    client: TestClient, service: dict[str, str]
) -> None:
    made = client.post(
        "/v1/requests",
        headers=service,
        json={"type": "opt_out_sale_sharing", "email": "ines@example.com"},
    ).json()
    assert (made["state"], made["verification"]) == ("verified", "not_required")
    # From Wed 25 Nov 2026: Thanksgiving (26th) and Christmas (25 Dec) are not business days.
    assert made["due_at"] == "2026-12-17T12:00:00Z"


def test_requests_due_soon_are_listed_and_closed_ones_are_not(
    client: TestClient, service: dict[str, str], officer: dict[str, str], clock: FixedClock
) -> None:
    person = sign_up(client, service, "v-req-3", "ines@example.com")

    def ask(kind: str) -> str:
        made = client.post(
            "/v1/requests",
            headers=service,
            json={"type": kind, "person_id": person, "reauthenticated": True},
        )
        identifier: str = made.json()["request_id"]
        return identifier

    opt_out, know = ask("opt_out_sale_sharing"), ask("know_categories")
    answered = client.post(
        f"/v1/requests/{opt_out}/answer", headers=officer, json={"response": "opt-out recorded"}
    )
    assert answered.status_code == 200, answered.text
    soon = (clock.now() + dt.timedelta(days=46)).isoformat()
    due = client.get("/v1/requests", headers=officer, params={"due_before": soon}).json()
    assert [r["request_id"] for r in due["requests"]] == [know]


def test_an_extension_moves_the_deadline_once_and_a_second_is_refused(
    client: TestClient, service: dict[str, str], officer: dict[str, str]
) -> None:
    person = sign_up(client, service, "v-req-4", "ines@example.com")
    made = client.post(
        "/v1/requests",
        headers=service,
        json={"type": "delete", "person_id": person, "reauthenticated": True},
    ).json()
    extended = client.post(
        f"/v1/requests/{made['request_id']}/extend",
        headers=officer,
        json={"reason": "records in several systems", "email": "ines@example.com"},
    )
    assert extended.status_code == 200, extended.text
    assert extended.json()["due_at"] == "2027-02-23T12:00:00Z"
    again = client.post(
        f"/v1/requests/{made['request_id']}/extend", headers=officer, json={"reason": "more"}
    )
    assert (again.status_code, again.json()["error"]["code"]) == (409, "extended")


def test_a_service_may_submit_but_not_read_or_answer_requests(
    client: TestClient, service: dict[str, str]
) -> None:
    assert client.get("/v1/requests", headers=service).status_code == 403
    made = client.post(
        "/v1/requests", headers=service, json={"type": "delete", "email": "x@example.com"}
    ).json()
    refused = client.post(
        f"/v1/requests/{made['request_id']}/answer", headers=service, json={"response": "done"}
    )
    assert refused.status_code == 403


def test_an_unverified_erasure_request_cannot_be_answered_through_the_api(
    client: TestClient, service: dict[str, str], officer: dict[str, str]
) -> None:
    made = client.post(
        "/v1/requests", headers=service, json={"type": "delete", "email": "x@example.com"}
    ).json()
    assert made["state"] == "awaiting_verification"
    for step in ("start", "answer"):
        refused = client.post(
            f"/v1/requests/{made['request_id']}/{step}",
            headers=officer,
            json={"response": "erased"},
        )
        assert refused.status_code == 409, step
        assert refused.json()["error"]["code"] in {"invalid_transition", "not_verified"}


def letters_of(client: TestClient, service: dict[str, str], person: str) -> list[str]:
    read = client.post(
        f"/v1/people/{person}/use",
        headers=service,
        json={"purpose": "service_support", "categories": ["correspondence.message"]},
    )
    assert read.status_code == 200, read.text
    return [value["value"] for value in read.json()["values"]]


@pytest.mark.clause("C7")
def test_letters_from_an_address_join_its_account_once_the_person_proves_the_address(
    app: FastAPI, client: TestClient, db: Database, service: dict[str, str]
) -> None:
    """Anyone can write from any address, so a letter stays apart from the account that
    holds it until the person proves they control the address (issue 16 item 7)."""
    ada = sign_up(client, service, "vid-letters-ada", "ada@example.com")
    letter = client.post(
        "/v1/collect",
        headers=service,
        json={
            "collection_point": "correspondence",
            "fields": {"email": "ada@example.com", "message": "Where is my invoice?"},
        },
    )
    assert letter.status_code == 201, letter.text
    assert letters_of(client, service, ada) == []

    asked = client.post(
        "/v1/public/requests", json={"type": "know_categories", "email": "ada@example.com"}
    )
    assert asked.status_code == 202, asked.text
    [link] = mailed_links(app, db)
    assert letters_of(client, service, ada) == [], "asking proves nothing"
    assert client.get(path_of(link)).status_code == 200

    assert letters_of(client, service, ada) == ["Where is my invoice?"]
    [joined] = audited(db, "vault:correspondence:joined")
    assert joined["target"] == f"person:{ada}"


def test_a_link_proves_the_address_not_a_person_id_the_request_named(
    app: FastAPI, client: TestClient, db: Database, service: dict[str, str]
) -> None:
    ada = sign_up(client, service, "vid-letters-ada2", "ada2@example.com")
    client.post(
        "/v1/collect",
        headers=service,
        json={
            "collection_point": "correspondence",
            "fields": {"email": "mallory@example.com", "message": "Words in Ada's mouth"},
        },
    )
    asked = client.post(
        "/v1/requests",
        headers=service,
        json={"type": "know_categories", "person_id": ada, "email": "mallory@example.com"},
    )
    assert asked.status_code == 201, asked.text
    [link] = mailed_links(app, db)
    assert client.get(path_of(link)).status_code == 200

    assert letters_of(client, service, ada) == []
    assert audited(db, "vault:correspondence:joined") == []
