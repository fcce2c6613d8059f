"""Refused keys are counted, not written one by one: an anonymous caller can neither grow the
audit log nor take the write lock with each request, and past a limit it is told to wait.
A staff member refused for lack of permission is recorded, with who, where and what."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from charter.audit.models import AuditEntry
from charter.clock import FixedClock
from charter.db import Database
from charter.settings import Settings
from charter.web.background import record_closed_refusals
from tests.conftest import bearer

pytestmark = pytest.mark.clause("C3")

LIMIT = 5


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.from_env(
        {"CHARTER_HOME": str(tmp_path / "home"), "CHARTER_AUTH_FAILURES_PER_MINUTE": str(LIMIT)}
    )


def entries(db: Database, action: str) -> list[dict[str, Any]]:
    with db.reading() as session:
        rows = session.scalars(
            select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.seq)
        ).all()
        return [
            {
                "actor": r.actor,
                "target": r.target,
                "outcome": r.outcome,
                "details": json.loads(r.details),
            }
            for r in rows
        ]


def everything_stored(db: Database) -> str:
    with db.reading() as session:
        return repr([tuple(row) for row in session.execute(select(AuditEntry)).all()])


def test_fifty_anonymous_requests_leave_one_audit_entry(
    app: FastAPI, db: Database, clock: FixedClock
) -> None:
    with TestClient(app) as client:
        for second in range(50):
            clock.advance(dt.timedelta(milliseconds=500))  # all within one minute
            assert client.get("/v1/audit").status_code in {401, 429}, second

    [entry] = entries(db, "auth:key:refused")
    assert entry["actor"] == "anonymous"
    assert entry["details"]["count"] == LIMIT
    assert entry["details"]["blocked"] == 50 - LIMIT
    assert entry["details"]["codes"] == {"missing_key": LIMIT}
    assert entry["details"]["minute"] == "2026-11-25T12:00:00.000000Z"


def test_without_a_limit_in_reach_every_refusal_is_counted_in_the_one_entry(
    app: FastAPI, db: Database, make_key: Callable[[str], str]
) -> None:
    key = make_key("privacy_officer")
    key_id = key.split("_", 2)[1]
    wrong = f"chk_{key_id}_{'x' * 40}"
    unknown = f"chk_{'A' * 12}_{'y' * 40}"

    with TestClient(app) as client:
        assert client.get("/v1/audit", headers=bearer(wrong)).status_code == 401
        assert client.get("/v1/audit", headers=bearer(unknown)).status_code == 401
        assert client.get("/v1/audit", headers=bearer("not-a-key-at-all")).status_code == 401
        assert client.get("/v1/audit").status_code == 401

    [entry] = entries(db, "auth:key:refused")
    assert entry["details"]["count"] == 4
    assert entry["details"]["codes"] == {"invalid_key": 2, "malformed_key": 1, "missing_key": 1}
    # The id of the real key presented with a wrong secret; the unknown id is not kept.
    assert entry["details"]["key_ids"] == [key_id]
    stored = everything_stored(db)
    for secret in (key.split("_", 2)[2], "x" * 40, "y" * 40, "not-a-key-at-all", "AAAAAAAAAAAA"):
        assert secret not in stored
    # The client is named by a keyed digest of its address, never the address itself.
    assert entry["target"].startswith("client:")
    assert "testclient" not in stored


def test_each_minute_is_its_own_entry_written_once_the_minute_is_over(
    app: FastAPI, db: Database, clock: FixedClock
) -> None:
    with TestClient(app) as client:
        client.get("/v1/audit")
        client.get("/v1/audit")
        clock.advance(dt.timedelta(minutes=1))
        client.get("/v1/audit")

        assert record_closed_refusals(app.state.runtime) == 1  # the first minute, now over
        assert [e["details"]["count"] for e in entries(db, "auth:key:refused")] == [2]

    minutes = [
        (e["details"]["minute"], e["details"]["count"]) for e in entries(db, "auth:key:refused")
    ]
    assert minutes == [
        ("2026-11-25T12:00:00.000000Z", 2),
        ("2026-11-25T12:01:00.000000Z", 1),
    ]


def test_past_the_limit_a_client_waits_for_its_minute_to_end_good_key_or_not(
    app: FastAPI, clock: FixedClock, make_key: Callable[[str], str]
) -> None:
    good = bearer(make_key("privacy_officer"))
    clock.advance(dt.timedelta(seconds=45))
    with TestClient(app) as client:
        for _ in range(LIMIT):
            assert client.get("/v1/audit", headers=bearer("chk_bad")).status_code == 401

        blocked = client.get("/v1/audit", headers=good)
        clock.advance(dt.timedelta(seconds=15))
        allowed = client.get("/v1/audit", headers=good)

    assert blocked.status_code == 429
    assert blocked.json()["error"]["code"] == "too_many_attempts"
    assert blocked.headers["retry-after"] == "15"
    assert allowed.status_code == 200


def test_public_pages_are_not_held_back_by_refused_keys(app: FastAPI) -> None:
    with TestClient(app) as client:
        for _ in range(LIMIT + 1):
            client.get("/v1/audit")

        assert client.get("/healthz").status_code == 200
        assert client.get("/v1/datamap").status_code == 200


def test_a_permission_denied_is_audited_with_actor_route_and_permission(
    client: TestClient, db: Database, make_key: Callable[[str], str]
) -> None:
    marketing = make_key("marketing")
    key_id = marketing.split("_", 2)[1]

    refused = client.put(
        "/v1/people/someone/choices",
        json={"choices": {"purpose:promotional": False}},
        headers=bearer(marketing),
    )

    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "permission_denied"
    [entry] = entries(db, "auth:permission:denied")
    assert entry["actor"].endswith(f"/key:{key_id}")
    assert entry["target"] == "route:PUT /v1/people/{person_id}/choices"
    assert entry["outcome"] == "refused"
    assert entry["details"] == {"permission": "choices:write", "role": "marketing"}
