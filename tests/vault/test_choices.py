"""A person's choices through `GET/PUT /v1/people/{id}/choices` and `set_choices()`
(C11, C18, C22, GPC): anyone may narrow what is done with a person's data, only the person
may widen it, and Global Privacy Control is the browser's signal, never a caller's choice."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import select, text

from charter.access.decide import PersonState, decide
from charter.audit.models import AuditEntry
from charter.clock import FixedClock
from charter.consent.choices import current_choices, set_choices
from charter.db import Database
from charter.errors import Forbidden, Unprocessable
from charter.policy.compiled import CompiledPolicy
from charter.policy.schema import Policy
from tests.conftest import BACKEND, bearer
from tests.vault.calls import PAGE_ORIGIN, consent, receipt

Headers = dict[str, str]
VISITOR = "vid-choices-ada"


@pytest.fixture
def user(client: TestClient, service: Headers) -> str:
    response = client.post(
        "/v1/collect",
        headers=service,
        json={
            "collection_point": "sign_up",
            "person": {"visitor_id": VISITOR},
            "fields": {"name": "Ada Example", "email": "ada@example.com"},
        },
    )
    assert response.status_code == 201, response.text
    person_id: str = response.json()["person_id"]
    return person_id


def put(
    client: TestClient, headers: Headers, person_id: str, choices: dict[str, bool], **body: Any
) -> Response:
    return client.put(
        f"/v1/people/{person_id}/choices", headers=headers, json={"choices": choices, **body}
    )


def ask(
    client: TestClient, headers: Headers, person_id: str, purpose: str, categories: list[str]
) -> dict[str, Any]:
    response = client.post(
        "/v1/decisions",
        headers=headers,
        json={"person_id": person_id, "purpose": purpose, "categories": categories},
    )
    assert response.status_code == 200, response.text
    decision: dict[str, Any] = response.json()
    return decision


def refusal(response: Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


def audited(db: Database, action: str) -> list[AuditEntry]:
    with db.reading() as session:
        return list(
            session.scalars(
                select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.seq)
            )
        )


@pytest.mark.clause("C11", "C18")
def test_every_opt_out_and_consent_purpose_and_non_essential_cookie_is_offered(
    client: TestClient, service: Headers, user: str, omni_policy: Policy
) -> None:
    response = client.get(f"/v1/people/{user}/choices", headers=service)
    assert response.status_code == 200, response.text
    offered = set(response.json()["offered"])
    expected = {
        f"purpose:{p.id}" for p in omni_policy.purposes if p.basis in ("opt_out", "consent")
    }
    expected |= {f"cookie:{c.category}" for c in omni_policy.cookies if c.category != "essential"}
    assert offered == expected
    assert {
        "purpose:promotional",
        "purpose:other_with_consent",
        "cookie:performance",
        "cookie:functionality",
    } <= offered
    assert response.json()["current"] == {}
    assert response.json()["history"] == []


@pytest.mark.clause("C11", "C18")
def test_the_whole_history_is_kept_with_when_how_and_policy_version(
    client: TestClient,
    service: Headers,
    user: str,
    clock: FixedClock,
    omni_compiled: CompiledPolicy,
) -> None:
    start = clock.now()
    assert consent(client, service, user, VISITOR, {"cookie:performance": True}).status_code == 200
    clock.advance(dt.timedelta(days=1))
    narrowed = put(
        client, service, user, {"purpose:promotional": False, "cookie:performance": False}
    )
    assert narrowed.status_code == 200, narrowed.text
    clock.advance(dt.timedelta(days=1))
    last = client.put(f"/v1/people/{user}/choices", headers={**service, "Sec-GPC": "1"})
    assert last.status_code == 200, last.text

    view = client.get(f"/v1/people/{user}/choices", headers=service).json()
    day = dt.timedelta(days=1)
    history = [
        (
            h["topic"],
            h["granted"],
            h["method"],
            h["policy_version"],
            dt.datetime.fromisoformat(h["at"]),
        )
        for h in view["history"]
    ]
    version = omni_compiled.version
    assert history == [
        ("cookie:performance", True, "receipt", version, start),
        ("purpose:promotional", False, "api", version, start + day),
        ("cookie:performance", False, "api", version, start + day),
        ("gpc", True, "gpc", version, start + 2 * day),
    ]
    assert view["current"] == {
        "cookie:performance": False,
        "purpose:promotional": False,
        "gpc": True,
    }


@pytest.mark.clause("C18")
def test_an_opt_out_takes_effect_on_the_very_next_decision(
    client: TestClient, service: Headers, user: str
) -> None:
    assert ask(client, service, user, "promotional", ["contact.email"])["allowed"] is True
    assert put(client, service, user, {"purpose:promotional": False}).status_code == 200
    refused = ask(client, service, user, "promotional", ["contact.email"])
    assert (refused["allowed"], refused["code"]) == (False, "opted_out")
    used = client.post(
        f"/v1/people/{user}/use",
        headers=service,
        json={"purpose": "promotional", "categories": ["contact.email"]},
    )
    assert used.status_code == 403
    assert "values" not in used.json()
    # Other opt-out purposes are untouched; the person opting back in restores the use.
    assert ask(client, service, user, "surveys", ["contact.email"])["allowed"] is True
    back = consent(client, service, user, VISITOR, {"purpose:promotional": True})
    assert back.status_code == 200, back.text
    assert ask(client, service, user, "promotional", ["contact.email"])["allowed"] is True


@pytest.mark.clause("C18")
def test_a_service_cannot_grant_itself_consent_and_then_read_everything(
    client: TestClient, service: Headers, user: str, db: Database
) -> None:
    """The security review's reproduction: a `service_client` put a consent on the person's
    choices itself, then used `other_with_consent` to read their name and e-mail."""
    use_body = {"purpose": "other_with_consent", "categories": ["identity.name", "contact.email"]}
    before = client.post(f"/v1/people/{user}/use", headers=service, json=use_body)
    assert refusal(before) == (403, "consent_required")

    granted = put(client, service, user, {"purpose:other_with_consent": True})
    claimed = put(client, service, user, {"purpose:other_with_consent": True}, method="banner")
    after = client.post(f"/v1/people/{user}/use", headers=service, json=use_body)

    assert refusal(granted) == (403, "consent_needs_the_person")
    assert granted.json()["error"]["details"] == {"topics": ["purpose:other_with_consent"]}
    assert refusal(claimed) == (422, "invalid_request")  # `method` is Charter's to set
    assert refusal(after) == (403, "consent_required")
    assert "Ada Example" not in after.text
    assert audited(db, "consent:choices:set") == []


@pytest.mark.clause("C18")
def test_a_consent_purpose_is_refused_until_the_person_consents(
    client: TestClient, service: Headers, user: str
) -> None:
    refused = ask(client, service, user, "other_with_consent", ["contact.email"])
    assert (refused["allowed"], refused["code"]) == (False, "consent_required")
    given = consent(client, service, user, VISITOR, {"purpose:other_with_consent": True})
    assert given.status_code == 200, given.text
    assert ask(client, service, user, "other_with_consent", ["contact.email"])["allowed"] is True
    # Withdrawing narrows: a service may record it on the person's word.
    assert put(client, service, user, {"purpose:other_with_consent": False}).status_code == 200
    withdrawn = ask(client, service, user, "other_with_consent", ["contact.email"])
    assert withdrawn["code"] == "consent_required"


@pytest.mark.clause("C18")
def test_a_receipt_counts_once_for_its_topic_its_person_and_a_few_minutes(
    client: TestClient, service: Headers, user: str, clock: FixedClock
) -> None:
    topic = "purpose:other_with_consent"
    other = client.post(
        "/v1/collect",
        headers=service,
        json={
            "collection_point": "sign_up",
            "person": {"visitor_id": "vid-choices-bob"},
            "fields": {"name": "Bob Example", "email": "bob@example.com"},
        },
    ).json()["person_id"]

    def widen(token: str, person: str = user, wanted: str = topic) -> Response:
        return put(client, service, person, {wanted: True}, receipts=[token])

    token = receipt(client, VISITOR, topic)
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert refusal(widen(forged)) == (403, "receipt_invalid")
    assert refusal(widen("not-a-receipt")) == (403, "receipt_invalid")
    assert refusal(widen(token, person=other)) == (403, "receipt_not_for_person")
    assert refusal(widen(token, wanted="cookie:performance")) == (403, "receipt_not_for_topic")
    assert widen(token).status_code == 200
    assert refusal(widen(token)) == (403, "receipt_used")

    late = receipt(client, VISITOR, topic)
    clock.advance(dt.timedelta(minutes=10))
    assert refusal(widen(late)) == (403, "receipt_expired")


def test_a_receipt_is_only_for_a_choice_of_the_policy_in_force(client: TestClient) -> None:
    def ask_for(topic: str, version: str = "1.0") -> Response:
        return client.post(
            "/v1/public/consent-receipts",
            headers={"Cookie": f"omni_vid={VISITOR}", "Origin": PAGE_ORIGIN},
            json={"topic": topic, "policy_version": version},
        )

    assert refusal(ask_for("purpose:billing")) == (422, "unknown_choice")
    assert refusal(ask_for("gpc")) == (422, "unknown_choice")
    assert refusal(ask_for("cookie:performance", "0.9")) == (409, "policy_version_changed")
    no_cookie = client.post(
        "/v1/public/consent-receipts",
        headers={"Origin": PAGE_ORIGIN},
        json={"topic": "cookie:performance", "policy_version": "1.0"},
    )
    assert refusal(no_cookie) == (422, "visitor_required")


def test_the_receipt_route_takes_pages_of_allowed_origins_only_and_limits_each_client(
    client: TestClient,
) -> None:
    body = {"topic": "cookie:performance", "policy_version": "1.0"}
    cookie = {"Cookie": f"omni_vid={VISITOR}", "Origin": PAGE_ORIGIN}

    foreign = client.post(
        "/v1/public/consent-receipts",
        headers={**cookie, "Origin": "https://evil.example.com"},
        json=body,
    )
    own = client.post("/v1/public/consent-receipts", headers=cookie, json=body)
    assert refusal(foreign) == (403, "origin_not_allowed")
    assert own.status_code == 201

    answers = [
        client.post("/v1/public/consent-receipts", headers=cookie, json=body) for _ in range(130)
    ]
    limited = [a for a in answers if a.status_code == 429]
    assert limited, "120 a minute is the default limit"
    assert limited[0].json()["error"]["code"] == "too_many_requests"
    assert 0 < int(limited[0].headers["retry-after"]) <= 60


@pytest.mark.parametrize("granted", [True, False])
def test_gpc_is_a_signal_never_a_choice_in_the_body(
    client: TestClient, service: Headers, user: str, granted: bool
) -> None:
    response = put(client, service, user, {"gpc": granted})

    assert refusal(response) == (422, "gpc_is_a_signal")


def test_the_gpc_header_opts_out_of_sale_and_sharing_for_good(
    client: TestClient, service: Headers, user: str, omni_compiled: CompiledPolicy
) -> None:
    response = client.put(f"/v1/people/{user}/choices", headers={**service, "Sec-GPC": "1"})
    assert response.status_code == 200, response.text
    assert response.json()["current"]["gpc"] is True
    assert omni_compiled.sale_or_sharing == {"promotional"}
    refused = ask(client, service, user, "promotional", ["contact.email"])
    assert (refused["allowed"], refused["code"]) == (False, "gpc_opt_out")
    # Purposes that are not sale or sharing stay as they were.
    assert ask(client, service, user, "service_improvement", ["usage.pages"])["allowed"] is True

    # Neither the service nor even a receipt of the person's lifts it here.
    assert refusal(put(client, service, user, {"gpc": False})) == (422, "gpc_is_a_signal")
    opted_in = consent(client, service, user, VISITOR, {"purpose:promotional": True})
    assert opted_in.status_code == 200
    assert ask(client, service, user, "promotional", ["contact.email"])["code"] == "gpc_opt_out"

    # A second signal adds nothing to the history.
    again = client.put(f"/v1/people/{user}/choices", headers={**service, "Sec-GPC": "1"})
    assert again.status_code == 200
    view = client.get(f"/v1/people/{user}/choices", headers=service).json()
    assert [h["topic"] for h in view["history"]].count("gpc") == 1


def test_every_route_that_names_a_person_takes_their_forwarded_gpc_signal(
    client: TestClient, service: Headers, db: Database
) -> None:
    collected = client.post(
        "/v1/collect",
        headers={**service, "Sec-GPC": "1"},
        json={
            "collection_point": "sign_up",
            "person": {"visitor_id": "vid-gpc-collect"},
            "fields": {"name": "Cy Example", "email": "cy@example.com"},
        },
    )
    assert collected.status_code == 201, collected.text
    events = client.post(
        "/v1/events",
        headers=service,
        json={
            "idempotency_key": "gpc-events-0001",
            "events": [
                {"type": "page_view", "time": "2026-11-25T09:00:00Z", "visitor_id": "vid-gpc-a"},
                {
                    "type": "page_view",
                    "time": "2026-11-25T09:00:01Z",
                    "visitor_id": "vid-gpc-b",
                    "gpc": True,
                },
                {
                    "type": "click",
                    "time": "2026-11-25T09:00:02Z",
                    "visitor_id": "vid-gpc-b",
                    "gpc": True,
                },
            ],
        },
    )
    assert events.status_code == 200, events.text

    def gpc_of(visitor_id: str) -> Any:
        person = client.post(
            "/v1/collect",
            headers=service,
            json={
                "collection_point": "cookie_identifiers",
                "source": "automatic",
                "person": {"visitor_id": visitor_id},
                "fields": {"cookie_id": f"ck-{visitor_id}"},
            },
        ).json()["person_id"]
        return (
            client.get(f"/v1/people/{person}/choices", headers=service).json()["current"].get("gpc")
        )

    assert gpc_of("vid-gpc-collect") is True
    assert gpc_of("vid-gpc-b") is True
    assert gpc_of("vid-gpc-a") is None
    # One record per person, however many of their events carried the signal.
    assert len(audited(db, "consent:gpc:recorded")) == 2


def test_a_header_other_than_gpc_1_changes_nothing(
    client: TestClient, service: Headers, user: str
) -> None:
    response = client.put(f"/v1/people/{user}/choices", headers={**service, "Sec-GPC": "0"})
    assert refusal(response) == (422, "no_choices")
    assert ask(client, service, user, "promotional", ["contact.email"])["allowed"] is True


@pytest.mark.clause("C11", "C18")
@pytest.mark.parametrize(
    "topic", ["purpose:billing", "purpose:selling_lists", "cookie:essential", "promotional"]
)
def test_an_unknown_topic_is_refused(
    client: TestClient, service: Headers, user: str, topic: str
) -> None:
    response = put(client, service, user, {topic: False, "purpose:surveys": False})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "unknown_choice"
    assert response.json()["error"]["details"]["topics"] == [topic]
    assert client.get(f"/v1/people/{user}/choices", headers=service).json()["current"] == {}


@pytest.mark.clause("C3")
def test_reading_a_persons_choices_is_audited_and_gone_once_they_are_erased(
    client: TestClient,
    service: Headers,
    user: str,
    db: Database,
    make_key: Callable[[str], str],
) -> None:
    assert put(client, service, user, {"purpose:surveys": False}).status_code == 200

    read = client.get(f"/v1/people/{user}/choices", headers=service)

    assert read.status_code == 200
    [entry] = audited(db, "consent:choices:read")
    assert entry.target == f"person:{user}"
    assert entry.actor.startswith("staff:")
    assert json.loads(entry.details) == {"current": 1, "history": 1}
    erased = client.delete(f"/v1/people/{user}", headers=bearer(make_key("privacy_officer")))
    assert erased.status_code == 200
    assert refusal(client.get(f"/v1/people/{user}/choices", headers=service)) == (
        410,
        "person_erased",
    )


def test_choices_of_an_erased_person_cannot_be_set(
    client: TestClient, service: Headers, user: str, make_key: Callable[[str], str]
) -> None:
    assert (
        client.delete(f"/v1/people/{user}", headers=bearer(make_key("privacy_officer"))).status_code
        == 200
    )
    response = put(client, service, user, {"purpose:promotional": False})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "person_erased"


@pytest.mark.clause("C14")
def test_choices_made_as_a_visitor_hold_after_sign_up(client: TestClient, service: Headers) -> None:
    visitor = client.post(
        "/v1/collect",
        headers=service,
        json={
            "collection_point": "cookie_identifiers",
            "source": "automatic",
            "person": {"visitor_id": "vid-banner"},
            "fields": {"cookie_id": "ck-banner"},
        },
    )
    assert visitor.status_code == 201, visitor.text
    visitor_id = visitor.json()["person_id"]
    gpc = client.put(
        f"/v1/people/{visitor_id}/choices",
        headers={**service, "Sec-GPC": "1"},
        json={"choices": {"cookie:performance": False}},
    )
    assert gpc.status_code == 200, gpc.text

    signed = client.post(
        "/v1/collect",
        headers=service,
        json={
            "collection_point": "sign_up",
            "person": {"visitor_id": "vid-banner"},
            "fields": {"name": "Ada Example", "email": "ada@example.com"},
        },
    )
    assert signed.status_code == 201, signed.text
    user = signed.json()["person_id"]
    refused = ask(client, service, user, "promotional", ["contact.email"])
    assert refused["code"] == "gpc_opt_out"
    view = client.get(f"/v1/people/{user}/choices", headers=service).json()
    assert view["current"] == {"gpc": True, "cookie:performance": False}
    assert [(h["topic"], h["method"]) for h in view["history"]] == [
        ("gpc", "gpc"),
        ("cookie:performance", "api"),
    ]

    # A choice sent for the visitor id after sign-up is the user's, and so is a receipt the
    # browser gets by its visitor cookie.
    later = put(client, service, visitor_id, {"purpose:surveys": False})
    assert later.status_code == 200, later.text
    assert later.json()["person_id"] == user
    assert ask(client, service, user, "surveys", ["contact.email"])["code"] == "opted_out"
    assert (
        consent(client, service, user, "vid-banner", {"purpose:surveys": True}).status_code == 200
    )
    assert ask(client, service, user, "surveys", ["contact.email"])["allowed"] is True


@pytest.mark.clause("C18")
def test_library_set_choices_governs_decide(
    db: Database, clock: FixedClock, omni_compiled: CompiledPolicy, user: str
) -> None:
    with db.writing() as session:
        set_choices(
            session,
            clock,
            omni_compiled,
            actor="test",
            person_id=user,
            choices={"purpose:service_improvement": False},
            method="api",
        )
    with db.reading() as session:
        state = PersonState(choices=current_choices(session, user).current)
    decision = decide(omni_compiled, "marketing", "service_improvement", ["usage.pages"], state)
    assert decision.code == "opted_out"
    with db.writing() as session, pytest.raises(Unprocessable) as refused:
        set_choices(
            session,
            clock,
            omni_compiled,
            actor="test",
            person_id=user,
            choices={"cookie:essential": False},
            method="api",
        )
    assert refused.value.code == "unknown_choice"
    # On the person's own channel (Charter's banner and preference center) they may widen.
    with db.writing() as session, pytest.raises(Forbidden):
        set_choices(
            session,
            clock,
            omni_compiled,
            actor="test",
            person_id=user,
            choices={"purpose:service_improvement": True},
            method="api",
        )
    with db.writing() as session:
        set_choices(
            session,
            clock,
            omni_compiled,
            actor="public",
            person_id=user,
            choices={"purpose:service_improvement": True},
            method="preference_center",
        )
    with db.reading() as session:
        assert current_choices(session, user).current["purpose:service_improvement"] is True


@pytest.mark.skipif(BACKEND != "sqlite", reason="only SQLite has one writer at a time")
def test_a_save_waits_for_another_writer_without_holding_up_other_requests(
    client: TestClient, service: Headers, user: str, db: Database
) -> None:
    """A save on SQLite runs on the event loop when the write lock is free; when another
    writer holds it, the save waits for it in a thread, and the server answers meanwhile."""
    holding, release = threading.Event(), threading.Event()

    def hold_the_write_lock() -> None:
        with db.writing() as session:
            session.execute(text("SELECT 1"))
            holding.set()
            release.wait(timeout=30)

    holder = threading.Thread(target=hold_the_write_lock)
    holder.start()
    assert holding.wait(timeout=10)
    answers: dict[str, Response] = {}
    saver = threading.Thread(
        target=lambda: answers.update(
            saved=put(client, service, user, {"cookie:functionality": False})
        )
    )
    saver.start()
    health = threading.Thread(target=lambda: answers.update(health=client.get("/healthz")))
    health.start()
    health.join(timeout=10)
    waited = saver.is_alive()
    release.set()
    saver.join(timeout=30)
    holder.join(timeout=30)

    assert answers["health"].status_code == 200
    assert waited
    assert answers["saved"].status_code == 200, answers["saved"].text
    assert answers["saved"].json()["current"]["cookie:functionality"] is False


def test_a_service_cannot_mint_a_receipt_in_the_persons_name(
    client: TestClient, service: Headers
) -> None:
    """The receipt is the person's own yes: a call without the Origin every browser sends
    with it, or with a service's key, is a service speaking for itself (issue 16 item 1)."""
    body = {"topic": "purpose:other_with_consent", "policy_version": "1.0"}
    cookie = {"Cookie": f"omni_vid={VISITOR}"}

    from_a_server = client.post("/v1/public/consent-receipts", headers=cookie, json=body)
    with_a_key = client.post(
        "/v1/public/consent-receipts",
        headers={**cookie, **service, "Origin": PAGE_ORIGIN},
        json=body,
    )

    assert refusal(from_a_server) == (403, "origin_required")
    assert refusal(with_a_key) == (403, "not_the_person")
