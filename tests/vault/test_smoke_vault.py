from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from tests.conftest import bearer


def test_sign_up_use_opt_out_and_erase(client: TestClient, make_key: Callable[[str], str]) -> None:
    service = bearer(make_key("service_client"))
    officer = bearer(make_key("privacy_officer"))
    response = client.post(
        "/v1/collect",
        headers=service,
        json={
            "collection_point": "sign_up",
            "person": {"visitor_id": "v-1"},
            "fields": {"name": "Ada Example", "email": "ada@example.com"},
        },
    )
    assert response.status_code == 201, response.text
    person = response.json()["person_id"]
    events = client.post(
        "/v1/events",
        headers=service,
        json={
            "idempotency_key": "batch-0001",
            "events": [
                {
                    "type": "page_view",
                    "time": "2026-11-25T10:00:00Z",
                    "person_id": person,
                    "ip": "192.0.2.7",
                    "path": "/pricing",
                }
            ],
        },
    )
    assert events.status_code == 200, events.text
    used = client.post(
        f"/v1/people/{person}/use",
        headers=service,
        json={"purpose": "promotional", "categories": ["contact.email", "usage.pages"]},
    )
    assert used.status_code == 200, used.text
    values = {v["field"]: v["value"] for v in used.json()["values"]}
    assert values == {"email": "ada@example.com", "path": "/pricing"}
    put = client.put(f"/v1/people/{person}/choices", headers={**service, "Sec-GPC": "1"})
    assert put.status_code == 200, put.text
    refused = client.post(
        f"/v1/people/{person}/use",
        headers=service,
        json={"purpose": "promotional", "categories": ["contact.email"]},
    )
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "gpc_opt_out"
    erased = client.delete(f"/v1/people/{person}", headers=officer)
    assert erased.status_code == 200, erased.text
    assert erased.json()["records_deleted"] == 2
    after = client.post(
        f"/v1/people/{person}/use",
        headers=service,
        json={"purpose": "service_support", "categories": ["contact.email"]},
    )
    assert after.json()["error"]["code"] == "person_erased"
