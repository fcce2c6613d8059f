"""API keys at the door: which keys are refused, why, what the audit log keeps of it, and how
revoking, expiring and disabling take effect on the very next request."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from charter.audit.models import AuditEntry
from charter.clock import FixedClock
from charter.db import Database
from charter.policy.compiled import CompiledPolicy
from charter.staff.service import (
    AuthenticationFailed,
    add_staff,
    authenticate,
    create_key,
    disable_staff,
    revoke_key,
)
from tests.conftest import bearer

pytestmark = pytest.mark.clause("C2")

GUARDED = "/v1/audit"  # any route the privacy officer may call


def key_id_of(key: str) -> str:
    return key.split("_")[1]


def secret_of(key: str) -> str:
    return key.split("_", 2)[2]


def refused_entries(db: Database) -> list[dict[str, Any]]:
    """The audit entries of refused keys: one per client and minute, written when the minute
    is over or the service stops."""
    with db.reading() as session:
        rows = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "auth:key:refused")
        ).all()
        return [
            {"target": r.target, "outcome": r.outcome, "details": json.loads(r.details)}
            for r in rows
        ]


def all_audit_text(db: Database) -> str:
    with db.reading() as session:
        rows = session.scalars(select(AuditEntry).order_by(AuditEntry.seq)).all()
        return "\n".join(
            " ".join((r.actor, r.action, r.target, r.outcome, r.details)) for r in rows
        )


def assert_refused(response: Any, code: str) -> None:
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    error = response.json()["error"]
    assert error["code"] == code
    assert 0 < len(error["message"]) <= 80
    assert "\n" not in error["message"]


@pytest.mark.clause("C3")
@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("missing", "missing_key"),
        ("malformed", "malformed_key"),
        ("unknown key id", "invalid_key"),
        ("wrong secret", "invalid_key"),
        ("bearer without a key", "missing_key"),
        ("another scheme", "missing_key"),
    ],
)
def test_a_bad_key_is_refused_briefly_and_counted_without_its_secret(
    app: FastAPI, make_key: Callable[[str], str], db: Database, case: str, code: str
) -> None:
    real = make_key("marketing")
    wrong_secret = "W" * 43
    presented = {
        "missing": None,
        "malformed": f"chk_short_{wrong_secret}",
        "unknown key id": f"chk_ZZZZZZZZZZZZ_{wrong_secret}",
        "wrong secret": f"chk_{key_id_of(real)}_{wrong_secret}",
        "bearer without a key": "",
        "another scheme": None,
    }[case]
    headers = {} if presented is None else bearer(presented)
    if case == "another scheme":
        headers = {"Authorization": f"Basic {wrong_secret}"}

    with TestClient(app) as client:
        response = client.get(GUARDED, headers=headers)
        assert refused_entries(db) == []  # counted in memory while the minute lasts

    assert_refused(response, code)
    assert wrong_secret not in response.text
    [entry] = refused_entries(db)  # written when the service stopped
    assert entry["outcome"] == "refused"
    assert entry["target"].startswith("client:")
    assert entry["details"]["count"] == 1
    assert entry["details"]["codes"] == {code: 1}
    # A real key presented wrongly is named by its id, so its owner can be told.
    assert entry["details"]["key_ids"] == ([key_id_of(real)] if case == "wrong secret" else [])
    assert wrong_secret not in all_audit_text(db)
    assert secret_of(real) not in all_audit_text(db)


def test_an_unknown_key_id_and_a_wrong_secret_look_the_same(
    client: TestClient, make_key: Callable[[str], str]
) -> None:
    real = make_key("privacy_officer")
    secret = secret_of(real)

    unknown = client.get(GUARDED, headers=bearer(f"chk_ZZZZZZZZZZZZ_{secret}"))
    wrong = client.get(GUARDED, headers=bearer(f"chk_{key_id_of(real)}_{secret[::-1]}"))

    assert (unknown.status_code, unknown.json()) == (wrong.status_code, wrong.json())
    assert unknown.json()["error"]["code"] == "invalid_key"


def test_a_good_key_authenticates_as_its_staff_member(
    db: Database, clock: FixedClock, omni_compiled: CompiledPolicy
) -> None:
    with db.writing() as session:
        member = add_staff(
            session, clock, omni_compiled, actor="test", name="bea", role="security_fraud"
        )
        issued = create_key(session, clock, actor="test", staff_name="bea")

    with db.reading() as session:
        actor = authenticate(session, clock, omni_compiled, issued.key)

    assert issued.key.startswith(f"chk_{issued.key_id}_")
    assert (actor.staff_id, actor.key_id, actor.role) == (
        member.id,
        issued.key_id,
        "security_fraud",
    )
    assert actor.permissions == omni_compiled.role_permissions["security_fraud"]
    assert "bea" not in actor.ref


def test_a_key_revoked_through_the_service_fails_on_the_next_request(
    client: TestClient, make_key: Callable[[str], str], db: Database, clock: FixedClock
) -> None:
    key = make_key("privacy_officer")
    assert client.get(GUARDED, headers=bearer(key)).status_code == 200

    with db.writing() as session:
        revoke_key(session, clock, actor="test", key_id=key_id_of(key))

    assert_refused(client.get(GUARDED, headers=bearer(key)), "revoked_key")


def test_a_key_revoked_over_http_fails_on_the_next_request(
    client: TestClient, make_key: Callable[[str], str]
) -> None:
    officer = make_key("privacy_officer")
    colleague = make_key("privacy_officer")
    assert client.get(GUARDED, headers=bearer(colleague)).status_code == 200

    revoked = client.delete(f"/v1/keys/{key_id_of(colleague)}", headers=bearer(officer))

    assert revoked.status_code == 200
    assert revoked.json()["key_id"] == key_id_of(colleague)
    assert revoked.json()["revoked_at"] is not None
    assert_refused(client.get(GUARDED, headers=bearer(colleague)), "revoked_key")
    assert client.get(GUARDED, headers=bearer(officer)).status_code == 200


def test_a_key_can_revoke_itself(client: TestClient, make_key: Callable[[str], str]) -> None:
    key = make_key("privacy_officer")

    assert client.delete(f"/v1/keys/{key_id_of(key)}", headers=bearer(key)).status_code == 200

    assert_refused(client.get(GUARDED, headers=bearer(key)), "revoked_key")


def test_revoking_an_unknown_key_is_404(client: TestClient, make_key: Callable[[str], str]) -> None:
    response = client.delete("/v1/keys/ZZZZZZZZZZZZ", headers=bearer(make_key("privacy_officer")))

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "key_not_found"


def test_an_expired_key_is_refused(
    client: TestClient, db: Database, clock: FixedClock, omni_compiled: CompiledPolicy
) -> None:
    with db.writing() as session:
        add_staff(session, clock, omni_compiled, actor="test", name="temp", role="privacy_officer")
        key = create_key(
            session, clock, actor="test", staff_name="temp", expires_in=dt.timedelta(days=1)
        ).key
    assert client.get(GUARDED, headers=bearer(key)).status_code == 200

    clock.advance(dt.timedelta(days=1) - dt.timedelta(seconds=1))
    assert client.get(GUARDED, headers=bearer(key)).status_code == 200

    clock.advance(dt.timedelta(seconds=1))
    assert_refused(client.get(GUARDED, headers=bearer(key)), "expired_key")


def test_a_disabled_staff_members_keys_fail_on_the_next_request(
    client: TestClient, make_key: Callable[[str], str]
) -> None:
    officer = make_key("privacy_officer")
    first = make_key("privacy_officer", name="leaver")
    second = client.post("/v1/staff/leaver/keys", json={}, headers=bearer(officer)).json()["key"]
    assert client.get(GUARDED, headers=bearer(first)).status_code == 200

    disabled = client.post("/v1/staff/leaver/disable", headers=bearer(officer))

    assert disabled.status_code == 200
    assert disabled.json()["active"] is False
    assert_refused(client.get(GUARDED, headers=bearer(first)), "staff_disabled")
    assert_refused(client.get(GUARDED, headers=bearer(second)), "staff_disabled")
    again = client.post("/v1/staff/leaver/keys", json={}, headers=bearer(officer))
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "staff_disabled"


def test_disabling_through_the_service_stops_authentication(
    db: Database, clock: FixedClock, omni_compiled: CompiledPolicy
) -> None:
    with db.writing() as session:
        add_staff(session, clock, omni_compiled, actor="test", name="gone", role="billing")
        key = create_key(session, clock, actor="test", staff_name="gone").key
    with db.writing() as session:
        disable_staff(session, clock, actor="test", name="gone")

    with db.reading() as session, pytest.raises(AuthenticationFailed) as refused:
        authenticate(session, clock, omni_compiled, key)

    assert refused.value.code == "staff_disabled"
