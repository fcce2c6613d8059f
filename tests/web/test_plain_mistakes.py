"""Plain mistakes get plain answers (issue 9): a body that is all optional may be left out, a
body that is not sent as JSON is refused as such (415), and an address that is not one is
refused naming its field."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from tests.conftest import bearer
from tests.vault.calls import sign_up


def test_a_key_is_issued_with_no_body_at_all(
    client: TestClient, make_key: Callable[..., str]
) -> None:
    headers = bearer(make_key("privacy_officer"))
    assert (
        client.post(
            "/v1/staff", headers=headers, json={"name": "avery", "role": "support_agent"}
        ).status_code
        == 201
    )

    issued = client.post("/v1/staff/avery/keys", headers=headers)

    assert issued.status_code == 201, issued.text
    assert issued.json()["key"].startswith("chk_")
    assert issued.json()["expires_at"] is None


def test_a_global_privacy_control_signal_alone_is_a_whole_request(
    client: TestClient, make_key: Callable[..., str]
) -> None:
    headers = bearer(make_key("service_client"))
    person = sign_up(client, headers, "visitor-plain-gpc", "gpc@example.com")

    saved = client.put(f"/v1/people/{person}/choices", headers={**headers, "Sec-GPC": "1"})

    assert saved.status_code == 200, saved.text
    assert saved.json()["current"]["gpc"] is True


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "text/json"]
)
def test_a_body_not_sent_as_json_is_refused_naming_the_type_expected(
    client: TestClient, make_key: Callable[..., str], content_type: str | None
) -> None:
    headers = bearer(make_key("privacy_officer"))
    if content_type is not None:
        headers["Content-Type"] = content_type

    refused = client.post(
        "/v1/staff", headers=headers, content=b'{"name": "blair", "role": "support_agent"}'
    )

    assert refused.status_code == 415, refused.text
    error = refused.json()["error"]
    assert error["code"] == "unsupported_media_type"
    assert "application/json" in error["message"]
    assert error["details"] == {"expected": "application/json"}
    listed = client.get("/v1/staff", headers=bearer(make_key("privacy_officer"))).json()
    assert "blair" not in [member["name"] for member in listed["staff"]]


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "application/json"])
def test_json_with_or_without_a_charset_is_json(
    client: TestClient, make_key: Callable[..., str], content_type: str
) -> None:
    headers = {**bearer(make_key("privacy_officer")), "Content-Type": content_type}

    added = client.post(
        "/v1/staff", headers=headers, content=b'{"name": "casey", "role": "support_agent"}'
    )

    assert added.status_code == 201, added.text


def test_an_address_that_is_not_one_is_refused_naming_its_field(
    client: TestClient, make_key: Callable[..., str]
) -> None:
    refused = client.post(
        "/v1/collect",
        headers=bearer(make_key("service_client")),
        json={
            "collection_point": "sign_up",
            "person": {"visitor_id": "visitor-plain-email"},
            "fields": {"name": "Dana Example", "email": "dana at example dot com"},
        },
    )

    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["code"] == "invalid_email"
    assert "email" in refused.json()["error"]["message"]
    assert "dana at example" not in refused.text
