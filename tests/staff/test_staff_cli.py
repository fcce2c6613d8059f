"""`charter staff` and `charter keys` through the installed console script, on the database
under test."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from charter.clock import SystemClock
from charter.db import Database
from charter.policy.compiled import CompiledPolicy
from charter.staff.service import Actor, AuthenticationFailed, authenticate
from tests.serving import CHARTER

pytestmark = pytest.mark.slow


Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def charter(tmp_path: Path, committed_db: Database) -> Run:
    """Runs `charter ARGS...` against a prepared CHARTER_HOME and the committed database."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("CHARTER_")}
    env |= {
        "CHARTER_HOME": str(tmp_path),
        "CHARTER_DATABASE_URL": committed_db.url,  # type: ignore[attr-defined]
        "COLUMNS": "200",
        "NO_COLOR": "1",
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [CHARTER, *args], env=env, capture_output=True, text=True, check=False, timeout=120
        )

    prepared = run("init")
    assert prepared.returncode == 0, prepared.stderr
    return run


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def refused(result: subprocess.CompletedProcess[str]) -> str:
    """The one-line error of a command that failed as a user would want it to."""
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("charter: ")
    return lines[0]


def listed(charter: Run) -> dict[str, dict[str, object]]:
    staff = json.loads(ok(charter("staff", "list", "--json")))["staff"]
    return {row["name"]: row for row in staff}


def check(db: Database, policy: CompiledPolicy, key: str) -> Actor:
    with db.reading() as session:
        return authenticate(session, SystemClock(), policy, key)


def refusal_code(db: Database, policy: CompiledPolicy, key: str) -> str:
    with pytest.raises(AuthenticationFailed) as failure:
        check(db, policy, key)
    return failure.value.code


def test_add_list_and_disable_staff(
    charter: Run, committed_db: Database, omni_compiled: CompiledPolicy
) -> None:
    assert ok(charter("staff", "add", "alice", "--role", "privacy_officer")) == (
        "Added alice (privacy_officer).\n"
    )
    added = json.loads(ok(charter("staff", "add", "bob", "--role", "billing", "--json")))
    assert added == {"name": "bob", "role": "billing"}
    bobs_key = ok(charter("keys", "create", "--staff", "bob")).strip()
    assert check(committed_db, omni_compiled, bobs_key).role == "billing"

    table = ok(charter("staff", "list"))
    ok(charter("staff", "disable", "bob"))

    assert {name: (row["role"], row["active"]) for name, row in listed(charter).items()} == {
        "alice": ("privacy_officer", True),
        "bob": ("billing", False),
    }
    alice_line = next(line for line in table.splitlines() if "alice" in line)
    assert "privacy_officer" in alice_line
    assert "yes" in alice_line
    assert refusal_code(committed_db, omni_compiled, bobs_key) == "staff_disabled"
    assert "nobody" in refused(charter("staff", "disable", "nobody"))
    assert "last active privacy officer" in refused(charter("staff", "disable", "alice"))


def test_refusals_are_one_line_and_change_nothing(
    charter: Run, omni_compiled: CompiledPolicy
) -> None:
    ok(charter("staff", "add", "alice", "--role", "billing"))

    unknown_role = refused(charter("staff", "add", "carol", "--role", "wizard"))
    duplicate = refused(charter("staff", "add", "alice", "--role", "marketing"))

    assert "wizard" in unknown_role
    assert all(role in unknown_role for role in omni_compiled.role_permissions)
    assert "already exists" in duplicate
    assert {name: row["role"] for name, row in listed(charter).items()} == {"alice": "billing"}


def test_a_key_from_the_cli_authenticates_until_revoked(
    charter: Run, committed_db: Database, omni_compiled: CompiledPolicy
) -> None:
    ok(charter("staff", "add", "alice", "--role", "privacy_officer"))

    created = charter("keys", "create", "--staff", "alice")
    key = ok(created).strip()

    assert len(ok(created).splitlines()) == 1
    actor = check(committed_db, omni_compiled, key)
    assert (actor.role, actor.key_id) == ("privacy_officer", key.split("_")[1])
    assert actor.key_id in created.stderr

    ok(charter("keys", "revoke", actor.key_id))

    assert refusal_code(committed_db, omni_compiled, key) == "revoked_key"
    assert "nope" in refused(charter("keys", "revoke", "nope"))


def test_a_key_with_a_lifetime_as_json(
    charter: Run, committed_db: Database, omni_compiled: CompiledPolicy
) -> None:
    ok(charter("staff", "add", "alice", "--role", "marketing"))
    before = dt.datetime.now(dt.UTC)

    issued = json.loads(
        ok(charter("keys", "create", "--staff", "alice", "--expires-in-days", "7", "--json"))
    )

    assert issued["staff"] == "alice"
    assert issued["key"].startswith(f"chk_{issued['key_id']}_")
    expires = dt.datetime.fromisoformat(issued["expires_at"])
    assert before + dt.timedelta(days=7) <= expires <= dt.datetime.now(dt.UTC) + dt.timedelta(7)
    assert check(committed_db, omni_compiled, issued["key"]).role == "marketing"
    assert "ghost" in refused(charter("keys", "create", "--staff", "ghost"))


def database_text(db: Database) -> str:
    """Every value of every table, as text."""
    engine = db.engine
    metadata = sa.MetaData()
    metadata.reflect(engine)
    parts = []
    with engine.connect() as connection:
        for table in metadata.sorted_tables:
            for row in connection.execute(sa.select(table)):
                parts.extend(str(value) for value in row)
    return "\n".join(parts)


@pytest.mark.clause("C2")
def test_the_key_is_not_stored_in_clear(
    charter: Run, committed_db: Database, tmp_path: Path
) -> None:
    ok(charter("staff", "add", "alice", "--role", "privacy_officer"))
    key = ok(charter("keys", "create", "--staff", "alice")).strip()
    secret = key.split("_", 2)[2]

    text = database_text(committed_db)

    assert "alice" in text, "the scan did not see the staff table"
    assert key.split("_")[1] in text, "the scan did not see the keys table"
    assert secret not in text
    stored_files = list(tmp_path.rglob("*"))
    if committed_db.is_sqlite:
        database_file = Path(committed_db.engine.url.database or "")
        stored_files += [database_file, database_file.with_name(database_file.name + "-wal")]
    for path in stored_files:
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
