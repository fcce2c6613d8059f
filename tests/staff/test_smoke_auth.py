from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from tests.conftest import bearer


@pytest.mark.clause("C3")
def test_privacy_officer_reads_the_audit_log(
    client: TestClient, make_key: Callable[[str], str]
) -> None:
    key = make_key("privacy_officer")
    response = client.get("/v1/audit", headers=bearer(key))
    assert response.status_code == 200
    actions = [entry["action"] for entry in response.json()["entries"]]
    assert "staff:key:created" in actions


@pytest.mark.clause("C2")
def test_marketing_may_not_read_the_audit_log(
    client: TestClient, make_key: Callable[[str], str]
) -> None:
    response = client.get("/v1/audit", headers=bearer(make_key("marketing")))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
