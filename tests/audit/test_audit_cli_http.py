"""The audit log through its faces: `charter audit verify|checkpoint` as the installed console
script, and `GET /v1/audit`, `GET /v1/audit/verify` over HTTP."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from charter.audit.chain import Event, head, record
from charter.clock import FixedClock
from charter.db import Database
from tests.conftest import bearer
from tests.serving import CHARTER

pytestmark = pytest.mark.clause("C3")


def append(db: Database, clock: FixedClock, count: int, action: str = "test:thing:done") -> None:
    for number in range(count):
        clock.advance(dt.timedelta(seconds=1))
        with db.writing() as session:
            record(session, clock, Event("test", action, f"thing:{number}"))


def tamper(db: Database, seq: int) -> None:
    with db.writing() as session:
        session.execute(
            text("UPDATE audit_entries SET target = 'thing:forged' WHERE seq = :seq"), {"seq": seq}
        )


# --- CLI ---------------------------------------------------------------------------------------


@pytest.fixture
def charter(
    committed_db: Database, tmp_path: Path
) -> Callable[..., subprocess.CompletedProcess[str]]:
    env = {
        **os.environ,
        "CHARTER_HOME": str(tmp_path / "home"),
        "CHARTER_DATABASE_URL": committed_db.url,  # type: ignore[attr-defined]
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [CHARTER, *args], env=env, capture_output=True, text=True, timeout=60, check=False
        )

    assert run("init").returncode == 0
    with committed_db.writing() as session:  # a chain of the test's own, without init's entry
        session.execute(text("DELETE FROM audit_entries"))
        session.execute(text("DELETE FROM audit_head"))
    return run


@pytest.mark.slow
def test_cli_verify_reports_an_intact_chain_then_names_the_edited_entry(
    committed_db: Database,
    clock: FixedClock,
    charter: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    append(committed_db, clock, 12)

    good = charter("audit", "verify")
    assert good.returncode == 0, good.stderr
    assert "intact" in good.stdout
    assert "12 entries" in good.stdout

    tamper(committed_db, 7)
    broken = charter("audit", "verify")
    assert broken.returncode == 1
    assert "entry 7" in broken.stderr
    assert "Traceback" not in broken.stderr
    assert broken.stdout == ""

    as_json = charter("audit", "verify", "--json")
    assert as_json.returncode == 1
    report = json.loads(as_json.stdout)
    assert report == {
        "ok": False,
        "entries": 6,
        "head_hash": report["head_hash"],
        "first_bad_seq": 7,
        "reason": "entry 7 was altered",
    }
    assert re.fullmatch("[0-9a-f]{64}", report["head_hash"])


@pytest.mark.slow
def test_cli_checkpoint_then_verify_against_it(
    committed_db: Database,
    clock: FixedClock,
    charter: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    empty = charter("audit", "checkpoint")
    assert empty.returncode == 1
    assert "empty" in empty.stderr
    append(committed_db, clock, 5)
    with committed_db.reading() as session:
        seq, digest = head(session)

    printed = charter("audit", "checkpoint")
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout.strip() == f"{seq}:{digest}"
    kept = printed.stdout.strip()

    append(committed_db, clock, 3)
    good = charter("audit", "verify", "--against", kept, "--json")
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout)["ok"] is True
    assert json.loads(good.stdout)["entries"] == 8

    unknown = charter("audit", "verify", "--against", f"{seq}:{'0' * 63}1")
    assert unknown.returncode == 1
    assert "checkpoint" in unknown.stderr
    assert "None" not in unknown.stderr

    # A usage error, not "chain broken": the checkpoint itself is malformed.
    for malformed in (digest, f"x:{digest}", f"{seq}:{digest[:-1]}", f"0:{digest}"):
        refused = charter("audit", "verify", "--against", malformed)
        assert refused.returncode == 2, malformed
        assert "SEQ:HASH" in refused.stderr
        assert "broken" not in refused.stderr + refused.stdout

    # An emptied database, or another one, does not hold the checkpoint: no false all clear.
    with committed_db.writing() as session:
        session.execute(text("DELETE FROM audit_entries"))
        session.execute(text("DELETE FROM audit_head"))
    replaced = charter("audit", "verify", "--against", kept)
    assert replaced.returncode == 1
    assert "checkpoint" in replaced.stderr


# --- HTTP --------------------------------------------------------------------------------------


def test_http_verify_reports_ok_then_the_broken_entry(
    client: TestClient, db: Database, clock: FixedClock, make_key: Callable[[str], str]
) -> None:
    key = make_key("privacy_officer")
    append(db, clock, 10)
    with db.reading() as session:
        last, digest = head(session)

    good = client.get("/v1/audit/verify", headers=bearer(key))
    assert good.status_code == 200
    assert good.json() == {
        "ok": True,
        "entries": last,
        "head_hash": digest,
        "first_bad_seq": None,
        "reason": None,
    }
    kept = {"against": f"{last}:{digest}"}
    assert client.get("/v1/audit/verify", params=kept, headers=bearer(key)).json()["ok"]
    malformed = client.get("/v1/audit/verify", params={"against": digest}, headers=bearer(key))
    assert malformed.status_code == 422

    tamper(db, last - 4)
    broken = client.get("/v1/audit/verify", headers=bearer(key))
    assert broken.status_code == 200
    assert broken.json()["ok"] is False
    assert broken.json()["first_bad_seq"] == last - 4


@pytest.mark.clause("C2")
def test_http_verify_needs_the_audit_read_permission(
    client: TestClient, make_key: Callable[[str], str]
) -> None:
    assert client.get("/v1/audit/verify").status_code == 401
    assert client.get("/v1/audit/verify", headers=bearer(make_key("marketing"))).status_code == 403


def test_http_pages_through_every_entry_in_order(
    client: TestClient, db: Database, clock: FixedClock, make_key: Callable[[str], str]
) -> None:
    key = make_key("privacy_officer")
    append(db, clock, 23)
    with db.reading() as session:
        last, _ = head(session)

    seen: list[int] = []
    after: int | None = 0
    pages = 0
    while after is not None:
        response = client.get("/v1/audit", params={"after": after, "limit": 5}, headers=bearer(key))
        assert response.status_code == 200
        body = response.json()
        assert len(body["entries"]) <= 5
        seen.extend(entry["seq"] for entry in body["entries"])
        after = body["next"]
        pages += 1

    assert seen == list(range(1, last + 1))
    assert pages == last // 5 + 1  # the last page is short, or empty
    entry = client.get("/v1/audit", params={"after": last - 1}, headers=bearer(key)).json()
    assert entry["next"] is None
    assert set(entry["entries"][0]) == {
        "seq",
        "at",
        "actor",
        "action",
        "target",
        "outcome",
        "details",
        "hash",
    }


def test_http_filters_by_action(
    client: TestClient, db: Database, clock: FixedClock, make_key: Callable[[str], str]
) -> None:
    key = make_key("privacy_officer")
    append(db, clock, 4, action="test:thing:kept")
    append(db, clock, 6, action="test:thing:other")
    append(db, clock, 4, action="test:thing:kept")

    first = client.get(
        "/v1/audit", params={"action": "test:thing:kept", "limit": 5}, headers=bearer(key)
    ).json()
    assert [entry["action"] for entry in first["entries"]] == ["test:thing:kept"] * 5
    rest = client.get(
        "/v1/audit",
        params={"action": "test:thing:kept", "limit": 5, "after": first["next"]},
        headers=bearer(key),
    ).json()
    assert [entry["action"] for entry in rest["entries"]] == ["test:thing:kept"] * 3
    assert rest["next"] is None
    none = client.get("/v1/audit", params={"action": "test:nothing:here"}, headers=bearer(key))
    assert none.json() == {"entries": [], "next": None}


@pytest.mark.parametrize("after", [2**63, 10**30, -1])
def test_http_an_after_beyond_what_the_sequence_column_holds_is_422(
    client: TestClient, make_key: Callable[[str], str], after: int
) -> None:
    key = make_key("privacy_officer")
    response = client.get("/v1/audit", params={"after": after}, headers=bearer(key))
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"][0]["field"] == "query.after"
    largest = client.get("/v1/audit", params={"after": 2**63 - 1}, headers=bearer(key))
    assert largest.status_code == 200, largest.text
    assert largest.json()["entries"] == []
