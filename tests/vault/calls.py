"""HTTP calls that several vault tests make."""

from __future__ import annotations

from fastapi.testclient import TestClient
from httpx import Response


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
