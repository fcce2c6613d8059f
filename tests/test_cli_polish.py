"""The CLI as people and scripts use it: `--version`, help on every command and option, the
key listing, enabling staff again, reading the audit log, and times in `--json` written as
the API writes them."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import shlex
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main
from fastapi.testclient import TestClient
from sqlalchemy import text
from typer.testing import CliRunner, Result

from charter.audit.chain import Event, record
from charter.cli.main import build_app
from charter.clock import FixedClock, SystemClock
from charter.db import Database
from charter.policy.compiled import CompiledPolicy
from charter.staff.service import AuthenticationFailed, authenticate
from tests.conftest import bearer
from tests.serving import CHARTER

Run = Callable[..., Result]


@pytest.fixture
def charter(tmp_path: Path, migrated_url: str, db: Database) -> Run:
    """Runs `charter ARGS...` in this process on a prepared CHARTER_HOME and the test's
    database (the one the `client` fixture serves; `db` empties it after the test)."""
    env: dict[str, str | None] = {
        "CHARTER_HOME": str(tmp_path / "home"),
        "CHARTER_DATABASE_URL": migrated_url,
        "CHARTER_KEYSTORE_URL": None,
        "CHARTER_MASTER_KEY": None,
        "CHARTER_MASTER_KEY_FILE": None,
        "CHARTER_POLICY": None,
        "COLUMNS": "200",
        "NO_COLOR": "1",
    }

    def run(*args: str) -> Result:
        return CliRunner().invoke(build_app(), list(args), env=env)

    prepared = run("init")
    assert prepared.exit_code == 0, prepared.output
    return run


def ok(result: Result) -> str:
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert result.exception is None, result.exception
    return result.stdout


def refused(result: Result, code: int = 1) -> str:
    """The one-line error of a command that refused as a user would want it to."""
    assert result.exit_code == code, (result.stdout, result.stderr)
    # Anything but SystemExit would have been a traceback on a terminal.
    assert isinstance(result.exception, SystemExit), result.exception
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("charter: ")
    return lines[0]


def as_json(result: Result) -> Any:
    return json.loads(ok(result))


# --- --version and help ------------------------------------------------------------------------


def test_version_prints_the_package_version() -> None:
    expected = f"charter {importlib.metadata.version('charter')}\n"

    in_process = CliRunner().invoke(build_app(), ["--version"])
    installed = subprocess.run(
        [CHARTER, "--version"], capture_output=True, text=True, timeout=60, check=False
    )

    assert (in_process.exit_code, in_process.stdout) == (0, expected)
    assert (installed.returncode, installed.stdout, installed.stderr) == (0, expected, "")


def _every_command(command: Any, path: list[str]) -> Iterator[tuple[list[str], Any]]:
    yield path, command
    for name, child in getattr(command, "commands", {}).items():
        yield from _every_command(child, [*path, name])


def _help_problems(path: list[str], command: Any) -> list[str]:
    where = " ".join(["charter", *path])
    shown = CliRunner().invoke(build_app(), [*path, "--help"], env={"COLUMNS": "100"})
    problems = []
    if shown.exit_code != 0:
        problems.append(f"{where} --help: exit {shown.exit_code}")
    for label in ("<bool>", "BOOLEAN"):
        if label in shown.stdout:
            problems.append(f"{where} --help shows {label}")
    usage = next((line for line in shown.stdout.splitlines() if "Usage:" in line), "")
    if not getattr(command, "commands", None) and "COMMAND [ARGS]" in usage:
        problems.append(f"{where}: usage names subcommands it does not have: {usage}")
    if not (command.help or "").strip():
        problems.append(f"{where}: no help text")
    for param in command.params:
        if not (getattr(param, "help", None) or "").strip():
            problems.append(f"{where}: {param.name} has no help text")
    return problems


def test_every_command_and_option_has_help_without_type_noise() -> None:
    commands = list(_every_command(typer.main.get_command(build_app()), []))

    problems = [problem for path, command in commands for problem in _help_problems(path, command)]

    assert len(commands) > 20, commands  # the walk saw the groups' commands
    assert problems == []


@pytest.mark.parametrize("command", ["init", "serve"])
def test_a_single_command_shows_no_phantom_subcommands(command: str) -> None:
    shown = CliRunner().invoke(build_app(), [command, "--help"])

    assert shown.exit_code == 0
    usage = next(line for line in shown.stdout.splitlines() if "Usage:" in line)
    assert usage.strip() == f"Usage: charter {command} [OPTIONS]"


# --- charter keys list -------------------------------------------------------------------------


def test_keys_list_shows_each_key_its_holder_and_last_use_and_never_a_secret(
    charter: Run,
    client: TestClient,
    make_key: Callable[..., str],
    clock: FixedClock,
) -> None:
    clock.advance(dt.timedelta(microseconds=250))
    officer = make_key("privacy_officer", name="olivia")
    clock.advance(dt.timedelta(seconds=5))
    assert client.post(
        "/v1/staff", json={"name": "bob", "role": "billing"}, headers=bearer(officer)
    ).is_success
    bobs = as_json(charter("keys", "create", "--staff", "bob", "--json"))
    ok(charter("keys", "revoke", bobs["key_id"]))
    olivia_id = officer.split("_")[1]

    listed = as_json(charter("keys", "list", "--json"))["keys"]
    table = ok(charter("keys", "list"))
    only_bob = as_json(charter("keys", "list", "--staff", "bob", "--json"))["keys"]

    by_id = {key["key_id"]: key for key in listed}
    assert set(by_id) == {olivia_id, bobs["key_id"]}
    assert by_id[olivia_id] == {
        "key_id": olivia_id,
        "staff": "olivia",
        "created_at": "2026-11-25T12:00:00.000250Z",
        "last_used_at": "2026-11-25T12:00:05.000250Z",  # when she added bob
        "expires_at": None,
        "revoked_at": None,
        "revoked": False,
        "state": "valid",
    }
    assert by_id[bobs["key_id"]]["staff"] == "bob"
    assert by_id[bobs["key_id"]]["revoked"] is True
    assert by_id[bobs["key_id"]]["state"] == "revoked"
    assert by_id[bobs["key_id"]]["last_used_at"] is None
    assert by_id[bobs["key_id"]]["revoked_at"].endswith("Z")
    assert [key["key_id"] for key in only_bob] == [bobs["key_id"]]
    olivia_line = next(line for line in table.splitlines() if olivia_id in line)
    assert "olivia" in olivia_line
    assert "2026-11-25 12:00:05" in olivia_line
    assert "valid" in olivia_line
    bob_line = next(line for line in table.splitlines() if bobs["key_id"] in line)
    assert "never" in bob_line
    assert "revoked" in bob_line
    for secret in (officer.split("_", 2)[2], bobs["key"].split("_", 2)[2]):
        assert secret not in json.dumps(listed) + table


def test_keys_list_for_an_unknown_member_is_refused_in_one_line(charter: Run) -> None:
    assert "no staff member named 'ghost'" in refused(charter("keys", "list", "--staff", "ghost"))
    assert ok(charter("keys", "list")) == "No API keys.\n"


# --- times in --json ---------------------------------------------------------------------------


def test_times_in_the_clis_json_are_written_as_the_api_writes_them(
    charter: Run,
    client: TestClient,
    make_key: Callable[..., str],
    clock: FixedClock,
) -> None:
    clock.advance(dt.timedelta(microseconds=120000))
    officer = bearer(make_key("privacy_officer", name="olivia"))
    api_staff = client.get("/v1/staff", headers=officer).json()["staff"]
    api_keys = client.get("/v1/staff/olivia/keys", headers=officer).json()["keys"]

    cli_staff = as_json(charter("staff", "list", "--json"))["staff"]
    cli_keys = as_json(charter("keys", "list", "--json"))["keys"]
    issued = as_json(
        charter("keys", "create", "--staff", "olivia", "--expires-in-days", "1", "--json")
    )

    assert cli_staff[0]["created_at"] == api_staff[0]["created_at"] == "2026-11-25T12:00:00.120000Z"
    assert cli_keys[0]["created_at"] == api_keys[0]["created_at"]
    assert issued["expires_at"].endswith("Z")
    assert dt.datetime.fromisoformat(issued["expires_at"]) > dt.datetime.now(dt.UTC)


# --- charter staff enable ----------------------------------------------------------------------


def key_refusal(db: Database, policy: CompiledPolicy, key: str) -> str | None:
    """Why the key is refused, or None if it is accepted."""
    try:
        with db.reading() as session:
            authenticate(session, SystemClock(), policy, key)
    except AuthenticationFailed as refusal:
        return refusal.code
    return None


@pytest.mark.clause("C2", "C3")
def test_a_disabled_member_is_enabled_again_with_their_unrevoked_keys(
    charter: Run, db: Database, omni_compiled: CompiledPolicy
) -> None:
    ok(charter("staff", "add", "bob", "--role", "billing"))
    key = ok(charter("keys", "create", "--staff", "bob")).strip()
    revoked = as_json(charter("keys", "create", "--staff", "bob", "--json"))
    ok(charter("keys", "revoke", revoked["key_id"]))
    ok(charter("staff", "disable", "bob"))
    assert key_refusal(db, omni_compiled, key) == "staff_disabled"

    enabled = as_json(charter("staff", "enable", "bob", "--json"))

    assert enabled == {"name": "bob", "active": True, "working_keys": [key.split("_")[1]]}
    assert key_refusal(db, omni_compiled, key) is None
    assert key_refusal(db, omni_compiled, revoked["key"]) == "revoked_key"
    (bob,) = as_json(charter("staff", "list", "--json"))["staff"]
    assert (bob["active"], bob["disabled_at"]) == (True, None)
    (entry,) = as_json(charter("audit", "log", "--action", "staff:member:enabled", "--json"))[
        "entries"
    ]
    (added,) = as_json(charter("audit", "log", "--action", "staff:member:added", "--json"))[
        "entries"
    ]
    assert entry["actor"].startswith("cli:")
    assert entry["target"] == added["target"]  # staff:<id>, the member's id and not their name
    assert "bob" not in json.dumps(entry)


def test_enabled_in_words_names_the_keys_that_work_again(charter: Run) -> None:
    ok(charter("staff", "add", "bob", "--role", "billing"))
    key_id = as_json(charter("keys", "create", "--staff", "bob", "--json"))["key_id"]
    ok(charter("staff", "disable", "bob"))

    enabled = charter("staff", "enable", "bob")

    assert ok(enabled) == "Enabled bob.\n"
    assert key_id in enabled.stderr


def test_enabling_an_active_or_unknown_member_is_refused_in_one_line(charter: Run) -> None:
    ok(charter("staff", "add", "bob", "--role", "billing"))
    before = as_json(charter("audit", "log", "--json"))["entries"]

    active = refused(charter("staff", "enable", "bob"))
    unknown = refused(charter("staff", "enable", "ghost"))

    assert "'bob' is already active" in active
    assert "no staff member named 'ghost'" in unknown
    assert as_json(charter("audit", "log", "--json"))["entries"] == before


# --- charter audit log -------------------------------------------------------------------------

T0 = dt.datetime(2026, 11, 25, 9, 0, tzinfo=dt.UTC)
# seq: (hours after T0, actor, action, target)
ENTRIES = {
    1: (0, "staff:3/key:AAAAAAAAAAAA", "access:personal_data:used", "person:p-0001"),
    2: (1, "staff:30/key:BBBBBBBBBBBB", "access:personal_data:used", "person:p-0002"),
    3: (2, "staff:3/key:CCCCCCCCCCCC/by:staff:1", "consent:choices:set", "person:p-0001"),
    4: (3, "cli:operator", "staff:member:added", "staff:4"),
    5: (4, "staff:3/key:AAAAAAAAAAAA", "vault:people:looked_up", ""),
}


@pytest.fixture
def log(charter: Run, db: Database) -> Run:
    """`charter` on an audit log holding ENTRIES alone (not `charter init`'s entry)."""
    with db.writing() as session:
        session.execute(text("DELETE FROM audit_entries"))
        session.execute(text("DELETE FROM audit_head"))
    for hours, actor, action, target in ENTRIES.values():
        with db.writing() as session:
            record(
                session, FixedClock(T0 + dt.timedelta(hours=hours)), Event(actor, action, target)
            )
    return charter


def seqs(run: Run, *args: str) -> list[int]:
    return [entry["seq"] for entry in as_json(run("audit", "log", *args, "--json"))["entries"]]


@pytest.mark.clause("C3")
def test_the_log_is_filtered_by_action_actor_person_and_time(log: Run) -> None:
    assert seqs(log) == [1, 2, 3, 4, 5]
    assert seqs(log, "--action", "access:personal_data:used") == [1, 2]
    # An actor names itself and what it did through each of its keys, not another staff:3...
    assert seqs(log, "--actor", "staff:3") == [1, 3, 5]
    assert seqs(log, "--actor", "staff:3/key:AAAAAAAAAAAA") == [1, 5]
    assert seqs(log, "--actor", "cli:operator") == [4]
    assert seqs(log, "--person", "p-0001") == [1, 3]
    assert seqs(log, "--person", "person:p-0001") == [1, 3]  # as the log writes it
    # --since is inclusive and --until is not; a time without an offset is UTC.
    assert seqs(log, "--since", "2026-11-25T10:00:00Z", "--until", "2026-11-25T12:00:00Z") == [2, 3]
    assert seqs(log, "--since", "2026-11-25T11:00:00+01:00") == [2, 3, 4, 5]
    assert seqs(log, "--since", "2026-11-25T10:00:00") == [2, 3, 4, 5]
    assert seqs(log, "--until", "2026-11-26") == [1, 2, 3, 4, 5]
    assert seqs(
        log, "--actor", "staff:3", "--person", "p-0001", "--since", "2026-11-25T10:00Z"
    ) == [3]
    assert seqs(log, "--person", "p-9999") == []


def test_the_log_in_json_matches_the_api_page_for_page(
    log: Run, client: TestClient, make_key: Callable[..., str]
) -> None:
    officer = bearer(make_key("privacy_officer"))

    first = as_json(log("audit", "log", "--limit", "2", "--json"))
    api = client.get("/v1/audit", params={"limit": 2}, headers=officer).json()

    assert first == api
    assert first["next"] == 2
    assert all(entry["at"].endswith("Z") for entry in first["entries"])
    assert first["entries"][0]["at"] == "2026-11-25T09:00:00.000000Z"
    assert [e["seq"] for e in first["entries"]] == [1, 2]


def test_the_log_pages_on_and_says_how_to_get_the_next_page(log: Run) -> None:
    page = log("audit", "log", "--actor", "staff:3", "--limit", "2")
    table = ok(page)
    hint = page.stderr.strip()

    assert "access:personal_data:used" in table
    assert "2026-11-25 09:00:00" in table
    assert "consent:choices:set" in table
    assert "vault:people:looked_up" not in table
    assert hint.startswith("More entries follow: charter audit log --after 3 ")
    command = shlex.split(hint.removeprefix("More entries follow: "))
    assert command[:3] == ["charter", "audit", "log"]
    assert {"--actor", "staff:3", "--limit", "2"} <= set(command)

    following = log(*command[1:])
    last = as_json(log(*command[1:], "--json"))

    assert "vault:people:looked_up" in ok(following)
    assert following.stderr == ""  # the last page: no hint
    assert [e["seq"] for e in last["entries"]] == [5]
    assert last["next"] is None
    assert seqs(log, "--after", "5") == []
    assert ok(log("audit", "log", "--person", "p-9999")) == "No audit entries match.\n"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--since", "yesterday"], ["--since", "ISO 8601"]),
        (["--until", "2026-13-01"], ["--until", "ISO 8601"]),
        (["--until", "9999-12-31T23:59:59-01:00"], ["--until", "outside the years"]),
        (["--since", "0001-01-01T00:00:00+01:00"], ["--since", "outside the years"]),
        (["--limit", "0"], ["--limit"]),
        (["--limit", "1001"], ["--limit"]),
        (["--after", "-1"], ["--after"]),
        (["--after", str(2**63)], ["--after"]),
    ],
)
def test_a_malformed_filter_is_a_usage_error_naming_the_option(
    log: Run, args: list[str], words: list[str]
) -> None:
    done = log("audit", "log", *args)

    assert done.exit_code == 2
    assert isinstance(done.exception, SystemExit)
    assert done.stdout == ""
    assert all(word in done.stderr for word in words), done.stderr


def test_a_time_window_that_ends_before_it_starts_is_refused_in_one_line(log: Run) -> None:
    window = ["--since", "2026-11-25T12:00:00Z", "--until", "2026-11-25T10:00:00Z"]

    assert "--since must be earlier than --until" in refused(log("audit", "log", *window), 2)
