"""HTTP calls that several vault tests make."""

from __future__ import annotations

import httpx
from fastapi.testclient import TestClient
from httpx import Response


def sign_up(client: httpx.Client, headers: dict[str, str], visitor_id: str, email: str) -> str:
    """`POST /v1/collect` at the sign-up form, answered 201; the new user's id."""
    response = client.post(
        "/v1/collect",
        headers=headers,
        json={
            "collection_point": "sign_up",
            "person": {"visitor_id": visitor_id},
            "fields": {"name": "Sam Example", "email": email},
        },
    )
    assert response.status_code == 201, response.text
    person_id: str = response.json()["person_id"]
    return person_id


def use(
    client: TestClient,
    headers: dict[str, str],
    person_id: str,
    purpose: str,
    categories: list[str],
) -> Response:
    """`POST /v1/people/{id}/use`: decide a use and, if allowed, get the values."""
    return client.post(
        f"/v1/people/{person_id}/use",
        headers=headers,
        json={"purpose": purpose, "categories": categories},
    )


# The origin of the page in the person's browser: the test client's own.
PAGE_ORIGIN = "http://testserver"


def receipt(client: TestClient, visitor_id: str, topic: str, policy_version: str = "1.0") -> str:
    """A consent receipt the person's browser (known by its visitor cookie) gets from
    Charter's public route, as a service's page would ask for it."""
    response = client.post(
        "/v1/public/consent-receipts",
        headers={"Cookie": f"omni_vid={visitor_id}", "Origin": PAGE_ORIGIN},
        json={"topic": topic, "policy_version": policy_version},
    )
    assert response.status_code == 201, response.text
    token: str = response.json()["receipt"]
    return token


def consent(
    client: TestClient,
    headers: dict[str, str],
    person_id: str,
    visitor_id: str,
    choices: dict[str, bool],
) -> Response:
    """`PUT /v1/people/{id}/choices` as a service forwards the person's own choices: a receipt
    for every topic the person says yes to."""
    tokens = [receipt(client, visitor_id, topic) for topic, granted in choices.items() if granted]
    return client.put(
        f"/v1/people/{person_id}/choices",
        headers=headers,
        json={"choices": choices, "receipts": tokens},
    )
