"""A person's choices through `GET/PUT /v1/people/{id}/choices` and `set_choices()`
(C11, C18, C20, C22, GPC)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from charter.access.decide import PersonState, decide
from charter.clock import FixedClock
from charter.consent.choices import current_choices, set_choices
from charter.db import Database
from charter.errors import Unprocessable
from charter.policy.compiled import CompiledPolicy
from charter.policy.schema import Policy
from tests.conftest import bearer

Headers = dict[str, str]


@pytest.fixture
def user(client: TestClient, service: Headers) -> str:
    response = client.post(
        "/v1/collect",
        headers=service,
        json={
            "collection_point": "sign_up",
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
    assert expected <= offered
    assert {
        "purpose:promotional",
        "purpose:other_with_consent",
        "cookie:performance",
        "cookie:functionality",
    } <= offered
    assert offered - expected == {"gpc"}
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
    assert (
        put(client, service, user, {"cookie:performance": True}, method="banner").status_code == 200
    )
    clock.advance(dt.timedelta(days=1))
    assert (
        put(
            client,
            service,
            user,
            {"purpose:promotional": False, "cookie:performance": False},
            method="preference_page",
        ).status_code
        == 200
    )
    clock.advance(dt.timedelta(days=1))
    assert put(client, service, user, {"purpose:surveys": False}).status_code == 200
    clock.advance(dt.timedelta(days=1))
    last = client.put(f"/v1/people/{user}/choices", headers={**service, "Sec-GPC": "1"}, json={})
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
        ("cookie:performance", True, "banner", version, start),
        ("purpose:promotional", False, "preference_page", version, start + day),
        ("cookie:performance", False, "preference_page", version, start + day),
        ("purpose:surveys", False, "api", version, start + 2 * day),
        ("gpc", True, "gpc", version, start + 3 * day),
    ]
    assert view["current"] == {
        "cookie:performance": False,
        "purpose:promotional": False,
        "purpose:surveys": False,
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
    # Other opt-out purposes are untouched; opting back in restores the use.
    assert ask(client, service, user, "surveys", ["contact.email"])["allowed"] is True
    assert put(client, service, user, {"purpose:promotional": True}).status_code == 200
    assert ask(client, service, user, "promotional", ["contact.email"])["allowed"] is True


@pytest.mark.clause("C18")
def test_a_consent_purpose_is_refused_until_consent_is_given(
    client: TestClient, service: Headers, user: str
) -> None:
    refused = ask(client, service, user, "other_with_consent", ["contact.email"])
    assert (refused["allowed"], refused["code"]) == (False, "consent_required")
    assert put(client, service, user, {"purpose:other_with_consent": True}).status_code == 200
    assert ask(client, service, user, "other_with_consent", ["contact.email"])["allowed"] is True
    assert put(client, service, user, {"purpose:other_with_consent": False}).status_code == 200
    withdrawn = ask(client, service, user, "other_with_consent", ["contact.email"])
    assert withdrawn["code"] == "consent_required"


def test_the_gpc_header_opts_out_of_sale_and_sharing_and_needs_nothing_more(
    client: TestClient, service: Headers, user: str, omni_compiled: CompiledPolicy
) -> None:
    assert put(client, service, user, {"purpose:promotional": True}).status_code == 200
    response = client.put(
        f"/v1/people/{user}/choices", headers={**service, "Sec-GPC": "1"}, json={}
    )
    assert response.status_code == 200, response.text
    assert response.json()["current"]["gpc"] is True
    view = client.get(f"/v1/people/{user}/choices", headers=service).json()
    assert view["history"][-1]["method"] == "gpc"
    assert omni_compiled.sale_or_sharing == {"promotional"}
    refused = ask(client, service, user, "promotional", ["contact.email"])
    assert (refused["allowed"], refused["code"]) == (False, "gpc_opt_out")
    # Purposes that are not sale or sharing stay as they were.
    assert ask(client, service, user, "service_improvement", ["usage.pages"])["allowed"] is True


def test_a_header_other_than_gpc_1_changes_nothing(
    client: TestClient, service: Headers, user: str
) -> None:
    response = client.put(
        f"/v1/people/{user}/choices", headers={**service, "Sec-GPC": "0"}, json={}
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "no_choices"
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
        json={"choices": {"cookie:performance": True}, "method": "banner"},
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
    assert view["current"] == {"gpc": True, "cookie:performance": True}
    assert [(h["topic"], h["method"]) for h in view["history"]] == [
        ("cookie:performance", "banner"),
        ("gpc", "gpc"),
    ]

    # A choice sent for the visitor id after sign-up is the user's.
    later = put(client, service, visitor_id, {"purpose:surveys": False})
    assert later.status_code == 200, later.text
    assert later.json()["person_id"] == user
    assert ask(client, service, user, "surveys", ["contact.email"])["code"] == "opted_out"


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
            method="preference_page",
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
