"""Personnel and keys over HTTP, as the privacy officer manages them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from charter.clock import FixedClock
from charter.db import Database
from charter.errors import Conflict
from charter.policy.compiled import CompiledPolicy
from charter.staff.models import StaffMember
from charter.staff.service import add_staff, list_staff
from tests.conftest import bearer


@pytest.fixture
def officer(make_key: Callable[[str], str]) -> dict[str, str]:
    return bearer(make_key("privacy_officer", name="olivia"))


def audit_actions(client: TestClient, headers: dict[str, str]) -> list[str]:
    entries = client.get("/v1/audit", params={"limit": 1000}, headers=headers).json()["entries"]
    return [entry["action"] for entry in entries]


@pytest.mark.clause("C3")
def test_add_a_staff_member(client: TestClient, officer: dict[str, str], clock: FixedClock) -> None:
    response = client.post(
        "/v1/staff", json={"name": "sam", "role": "support_agent"}, headers=officer
    )

    assert response.status_code == 201
    body = response.json()
    assert (body["name"], body["role"], body["active"]) == ("sam", "support_agent", True)
    assert dt.datetime.fromisoformat(body["created_at"]) == clock.now()
    assert body["disabled_at"] is None
    assert "staff:member:added" in audit_actions(client, officer)


@pytest.mark.clause("C2")
def test_an_unknown_role_is_refused_with_the_roles_of_the_policy(
    client: TestClient, officer: dict[str, str], omni_compiled: CompiledPolicy
) -> None:
    response = client.post("/v1/staff", json={"name": "sam", "role": "wizard"}, headers=officer)

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "unknown_role"
    assert "wizard" in error["message"]
    assert all(role in error["message"] for role in omni_compiled.role_permissions)
    names = [m["name"] for m in client.get("/v1/staff", headers=officer).json()["staff"]]
    assert "sam" not in names


@pytest.mark.parametrize("name", ["Sam", "sam smith", "-sam", "s" * 65, "sam/../x"])
def test_a_malformed_name_is_refused(
    client: TestClient, officer: dict[str, str], name: str
) -> None:
    response = client.post("/v1/staff", json={"name": name, "role": "billing"}, headers=officer)

    assert response.status_code == 422
    assert response.json()["error"]["code"] in {"invalid_staff_name", "invalid_request"}


def test_a_duplicate_name_is_a_conflict(client: TestClient, officer: dict[str, str]) -> None:
    first = client.post("/v1/staff", json={"name": "sam", "role": "billing"}, headers=officer)
    second = client.post("/v1/staff", json={"name": "sam", "role": "marketing"}, headers=officer)

    assert first.status_code == 201
    assert second.status_code == 409
    assert second.json()["error"]["code"] == "staff_exists"
    staff = {m["name"]: m for m in client.get("/v1/staff", headers=officer).json()["staff"]}
    assert staff["sam"]["role"] == "billing"


def test_list_staff_by_name(client: TestClient, officer: dict[str, str]) -> None:
    for name, role in [("zoe", "recruiter"), ("adam", "billing")]:
        client.post("/v1/staff", json={"name": name, "role": role}, headers=officer)

    response = client.get("/v1/staff", headers=officer)

    assert response.status_code == 200
    rows = [(m["name"], m["role"], m["active"]) for m in response.json()["staff"]]
    assert rows == [
        ("adam", "billing", True),
        ("olivia", "privacy_officer", True),
        ("zoe", "recruiter", True),
    ]


@pytest.mark.clause("C2")
def test_issue_a_key_that_works_at_once(client: TestClient, officer: dict[str, str]) -> None:
    client.post("/v1/staff", json={"name": "ava", "role": "security_fraud"}, headers=officer)

    issued = client.post("/v1/staff/ava/keys", json={}, headers=officer)

    assert issued.status_code == 201
    body = issued.json()
    assert body["key"].startswith(f"chk_{body['key_id']}_")
    assert body["expires_at"] is None
    assert client.get("/v1/audit", headers=bearer(body["key"])).status_code == 200
    assert client.get("/v1/staff", headers=bearer(body["key"])).status_code == 403


def test_a_key_with_a_lifetime_expires_when_it_says(
    client: TestClient, officer: dict[str, str], clock: FixedClock
) -> None:
    client.post("/v1/staff", json={"name": "ava", "role": "security_fraud"}, headers=officer)

    body = client.post("/v1/staff/ava/keys", json={"expires_in_days": 30}, headers=officer).json()

    expires = dt.datetime.fromisoformat(body["expires_at"])
    assert expires == clock.now() + dt.timedelta(days=30)
    clock.advance(dt.timedelta(days=30))
    refused = client.get("/v1/audit", headers=bearer(body["key"]))
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "expired_key"


@pytest.mark.parametrize("days", [0, -1, 3651])
def test_a_key_lifetime_out_of_range_is_refused(
    client: TestClient, officer: dict[str, str], days: int
) -> None:
    client.post("/v1/staff", json={"name": "ava", "role": "billing"}, headers=officer)

    response = client.post("/v1/staff/ava/keys", json={"expires_in_days": days}, headers=officer)

    assert response.status_code == 422
    assert "expires_in_days" in response.json()["error"]["message"]


def test_a_key_for_nobody_is_404(client: TestClient, officer: dict[str, str]) -> None:
    response = client.post("/v1/staff/nobody/keys", json={}, headers=officer)

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "staff_not_found"


def test_listing_keys_shows_no_secret(client: TestClient, officer: dict[str, str]) -> None:
    client.post("/v1/staff", json={"name": "ava", "role": "billing"}, headers=officer)
    issued = [client.post("/v1/staff/ava/keys", json={}, headers=officer).json() for _ in range(2)]
    client.delete(f"/v1/keys/{issued[0]['key_id']}", headers=officer)

    response = client.get("/v1/staff/ava/keys", headers=officer)

    assert response.status_code == 200
    keys = response.json()["keys"]
    assert [k["key_id"] for k in keys] == [i["key_id"] for i in issued]
    assert keys[0]["revoked_at"] is not None
    assert keys[1]["revoked_at"] is None
    assert all(set(k) == {"key_id", "created_at", "expires_at", "revoked_at"} for k in keys)
    for one in issued:
        assert one["key"] not in response.text
        assert one["key"].split("_", 2)[2] not in response.text
    assert "hash" not in response.text


def test_listing_keys_of_nobody_is_404(client: TestClient, officer: dict[str, str]) -> None:
    response = client.get("/v1/staff/nobody/keys", headers=officer)

    assert response.status_code == 404


@pytest.mark.clause("C3")
def test_disable_a_staff_member(
    client: TestClient, officer: dict[str, str], clock: FixedClock
) -> None:
    client.post("/v1/staff", json={"name": "sam", "role": "billing"}, headers=officer)
    clock.advance(dt.timedelta(hours=1))

    response = client.post("/v1/staff/sam/disable", headers=officer)
    again = client.post("/v1/staff/sam/disable", headers=officer)

    assert response.status_code == 200
    assert response.json()["active"] is False
    assert dt.datetime.fromisoformat(response.json()["disabled_at"]) == clock.now()
    assert again.status_code == 200
    assert audit_actions(client, officer).count("staff:member:disabled") == 1
    staff = {m["name"]: m for m in client.get("/v1/staff", headers=officer).json()["staff"]}
    assert staff["sam"]["active"] is False


def test_the_last_active_privacy_officer_cannot_be_disabled(
    client: TestClient, officer: dict[str, str], make_key: Callable[[str], str]
) -> None:
    other = bearer(make_key("privacy_officer", name="olga"))
    [me] = [
        m["name"]
        for m in client.get("/v1/staff", headers=officer).json()["staff"]
        if m["role"] == "privacy_officer" and m["name"] != "olga"
    ]

    first = client.post("/v1/staff/olga/disable", headers=officer)
    last = client.post(f"/v1/staff/{me}/disable", headers=officer)

    assert first.status_code == 200
    assert last.status_code == 409
    assert last.json()["error"]["code"] == "last_privacy_officer"
    assert client.get("/v1/staff", headers=officer).status_code == 200  # still someone to manage
    assert client.get("/v1/staff", headers=other).status_code == 401


def test_disabling_nobody_is_404(client: TestClient, officer: dict[str, str]) -> None:
    response = client.post("/v1/staff/nobody/disable", headers=officer)

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "staff_not_found"


@pytest.mark.clause("C3")
def test_the_audit_log_names_staff_by_id_only(client: TestClient, officer: dict[str, str]) -> None:
    added = client.post(
        "/v1/staff", json={"name": "distinctive-handle", "role": "billing"}, headers=officer
    )
    keyed = client.post("/v1/staff/distinctive-handle/keys", json={}, headers=officer)
    disabled = client.post("/v1/staff/distinctive-handle/disable", headers=officer)
    assert (added.status_code, keyed.status_code, disabled.status_code) == (201, 201, 200)

    entries = client.get("/v1/audit", params={"limit": 1000}, headers=officer).json()["entries"]

    actions = [e["action"] for e in entries]
    assert {"staff:member:added", "staff:key:created", "staff:member:disabled"} <= set(actions)
    assert "distinctive-handle" not in str(entries)
    assert "olivia" not in str(entries)


def test_a_duplicate_that_loses_a_race_is_still_a_conflict(
    committed_db: Database, clock: FixedClock, omni_compiled: CompiledPolicy
) -> None:
    """Two adds of one name at once: the later one's check cannot see the first one yet, so
    the unique index refuses it; that must be the 409 above, not a 500.

    A REPEATABLE READ snapshot taken before the first add commits stands in for "at once"
    without timing. SQLite serialises writers, so only PostgreSQL can lose this race.
    """
    if committed_db.is_sqlite:
        pytest.skip("SQLite runs one writer at a time: there is no race to lose")
    engine = committed_db.engine.execution_options(isolation_level="REPEATABLE READ")
    with Session(engine) as late:
        late.execute(sa.text("SELECT 1"))  # the snapshot starts here
        with committed_db.writing() as first:
            add_staff(first, clock, omni_compiled, actor="test", name="twin", role="billing")

        with pytest.raises(Conflict) as conflict:
            add_staff(late, clock, omni_compiled, actor="test", name="twin", role="marketing")
        late.rollback()

    assert conflict.value.code == "staff_exists"
    with committed_db.reading() as session:
        assert {m.name: m.role for m in list_staff(session)} == {"twin": "billing"}


@pytest.mark.clause("C3")
def test_a_key_minted_for_someone_else_names_its_issuer_in_everything_done_with_it(
    client: TestClient, officer: dict[str, str], db: Database, make_key: Callable[[str], str]
) -> None:
    client.post("/v1/staff", json={"name": "sam", "role": "support_agent"}, headers=officer)
    minted = client.post("/v1/staff/sam/keys", headers=officer)  # no body: every field optional
    assert minted.status_code == 201, minted.text
    own = client.post("/v1/staff/olivia/keys", headers=officer).json()
    with db.reading() as session:
        staff = dict(session.execute(sa.select(StaffMember.name, StaffMember.id)).all())
    person = client.post(
        "/v1/collect",
        headers=bearer(make_key("service_client")),
        json={"collection_point": "sign_up", "fields": {"name": "Ada", "email": "a@example.com"}},
    ).json()["person_id"]
    ask = {"person_id": person, "purpose": "service_support", "categories": ["identity.name"]}

    assert client.post("/v1/decisions", headers=bearer(minted.json()["key"]), json=ask).is_success
    assert client.post("/v1/decisions", headers=bearer(own["key"]), json=ask).is_success

    entries = client.get("/v1/audit", params={"limit": 1000}, headers=officer).json()["entries"]
    created = {e["target"]: e for e in entries if e["action"] == "staff:key:created"}
    asked = [e["actor"] for e in entries if e["action"] == "access:decision:asked"]
    assert created[f"key:{minted.json()['key_id']}"]["details"]["issued_by"] == staff["olivia"]
    assert created[f"key:{own['key_id']}"]["details"]["issued_by"] is None
    assert asked == [
        f"staff:{staff['sam']}/key:{minted.json()['key_id']}/by:staff:{staff['olivia']}",
        f"staff:{staff['olivia']}/key:{own['key_id']}",
    ]
