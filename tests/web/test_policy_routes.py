"""The policy over HTTP: the page, the declaration as JSON, the data map, and error shapes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from charter.policy.render import render_html
from charter.policy.schema import Policy
from charter.settings import Settings
from tests.policy.test_render import Page, published_headings

BODY_LIMIT = 1024


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """The shared `client` fixture's settings, with a small body limit to test it cheaply."""
    return Settings.from_env(
        {"CHARTER_HOME": str(tmp_path / "home"), "CHARTER_MAX_BODY_BYTES": str(BODY_LIMIT)}
    )


@pytest.mark.clause("C1")
def test_policy_page_is_the_rendered_policy(client: TestClient, omni_policy: Policy) -> None:
    response = client.get("/policy")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert Page(response.text).level("h2") == published_headings()
    assert response.text == render_html(omni_policy)


@pytest.mark.clause("C1")
def test_policy_json_is_the_declaration(client: TestClient, omni_policy: Policy) -> None:
    response = client.get("/v1/policy")

    assert response.status_code == 200
    body = response.json()
    assert body["organisation"]["version"] == "1.0"
    assert [p["id"] for p in body["purposes"]] == [p.id for p in omni_policy.purposes]
    assert len(body["purposes"]) == 12


@pytest.mark.clause("C1", "C9")
def test_datamap_lists_every_category(client: TestClient, omni_policy: Policy) -> None:
    response = client.get("/v1/datamap")

    assert response.status_code == 200
    body = response.json()
    assert body["policy_version"] == "1.0"
    rows = {row["category"]: row for row in body["categories"]}
    assert list(rows) == [c.id for c in omni_policy.categories]
    assert all({"purposes", "recipients", "retention"} <= set(row) for row in rows.values())
    email = rows["contact.email"]
    assert "billing" in email["purposes"]
    assert "payments_processor" in email["recipients"]
    assert email["retention"] == {"keep": "customer_instructs", "months": None}
    assert rows["billing.payment"]["retention"] == {"keep": "period", "months": 84}
    assert rows["employment.application"]["recipients"] == []


def test_healthz(client: TestClient) -> None:
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "policy_version": "1.0"}


def test_openapi_and_docs_answer(client: TestClient) -> None:
    openapi = client.get("/openapi.json")
    docs = client.get("/docs")

    assert openapi.status_code == 200
    assert {"/policy", "/v1/policy", "/v1/datamap", "/healthz"} <= set(openapi.json()["paths"])
    assert docs.status_code == 200
    assert docs.headers["content-type"].startswith("text/html")


def test_unknown_path_is_a_json_404(client: TestClient) -> None:
    response = client.get("/no/such/page")

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"]["code"] == "not_found"
    assert response.json()["error"]["message"]


def post_paths(client: TestClient) -> list[str]:
    """Every POST route the API documents, with its path parameters filled in."""
    paths = client.get("/openapi.json").json()["paths"]
    return [re.sub(r"\{[^}]+\}", "x", path) for path, methods in paths.items() if "post" in methods]


def test_malformed_or_oversize_bodies_never_answer_500(client: TestClient) -> None:
    paths = post_paths(client)
    assert paths, "no POST route to try"
    headers = {"content-type": "application/json"}

    for path in paths:
        malformed = client.post(path, content=b'{"name": ', headers=headers)
        oversize = client.post(path, content=b"x" * (BODY_LIMIT + 1), headers=headers)

        assert malformed.status_code < 500, path
        assert "error" in malformed.json(), path
        assert oversize.status_code == 413, path
        assert oversize.json()["error"]["code"] == "too_large", path


def test_a_body_over_the_limit_is_refused_before_routing(client: TestClient) -> None:
    response = client.post("/v1/policy", content=b"x" * (BODY_LIMIT + 1))

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"
