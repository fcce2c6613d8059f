"""The master key (C2): created by `charter init` for the owner only, never replaced when lost,
checked at every start, and rotated by re-wrapping the data keys (`charter keys
rotate-master`), a rotation that a crash cannot leave half done."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner, Result

from charter.audit.models import AuditEntry
from charter.boot import boot
from charter.cli.main import build_app
from charter.clock import SystemClock
from charter.db import Database, make_engine
from charter.settings import Settings
from charter.staff.service import add_staff, create_key
from charter.vault.crypto import decode_key, encode_key, new_key
from charter.vault.keystore import MasterKeyMismatch, SqlKeyStore, WrappedKey
from charter.vault.rotation import start_rotation
from charter.web.app import create_app
from tests.conftest import BACKEND, bearer
from tests.serving import CHARTER

pytestmark = pytest.mark.clause("C2")

NAME = "Zebulon Testperson"
EMAIL = "zebulon.testperson@example.com"


@pytest.fixture(scope="module")
def postgres_keystore(database_url_factory: Callable[[], str]) -> str | None:
    """On PostgreSQL, one key store database for the module, emptied by each test; on SQLite
    the key store is the default file in CHARTER_HOME."""
    return database_url_factory() if BACKEND == "postgres" else None


@dataclass
class Home:
    """A CHARTER_HOME and the environment that points Charter at it."""

    path: Path
    env: dict[str, str | None]

    @property
    def key_file(self) -> Path:
        return self.path / "secrets" / "master.key"

    @property
    def pending_file(self) -> Path:
        return self.path / "secrets" / "master.key.new"

    def settings(self, **extra: str | None) -> Settings:
        env = {k: v for k, v in {**self.env, **extra}.items() if v is not None}
        return Settings.from_env(env)

    def keystore_url(self) -> str:
        return self.settings().keystore_url


@pytest.fixture
def home(tmp_path: Path, postgres_keystore: str | None) -> Home:
    env: dict[str, str | None] = {
        "CHARTER_HOME": str(tmp_path / "home"),
        "CHARTER_DATABASE_URL": None,
        "CHARTER_KEYSTORE_URL": postgres_keystore,
        "CHARTER_MASTER_KEY": None,
        "CHARTER_POLICY": None,
    }
    if postgres_keystore is not None:
        engine = make_engine(postgres_keystore)
        WrappedKey.metadata.drop_all(engine)
        engine.dispose()
    return Home(tmp_path / "home", env)


def cli(home: Home, *args: str, **extra: str | None) -> Result:
    """Run a `charter` command in this process, as a user would type it."""
    return CliRunner().invoke(build_app(), list(args), env={**home.env, **extra})


def run(home: Home, *args: str, **extra: str | None) -> subprocess.CompletedProcess[str]:
    """Run a `charter` command as its own process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHARTER_")}
    env.update({k: v for k, v in {**home.env, **extra}.items() if v is not None})
    return subprocess.run(
        [CHARTER, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def assert_one_line_refusal(code: int, stderr: str, *words: str) -> None:
    assert code == 1
    assert len(stderr.splitlines()) == 1, stderr
    assert stderr.startswith("charter: ")
    assert "Traceback" not in stderr
    for word in words:
        assert word in stderr


@contextlib.contextmanager
def started(settings: Settings) -> Iterator[TestClient]:
    """Charter started as `charter serve` starts it, serving in process."""
    booted = boot(settings, SystemClock())
    try:
        app = create_app(settings, booted.policy, booted.db, booted.keys)
        with TestClient(app) as client:
            yield client
    finally:
        booted.close()


def collect_someone(settings: Settings) -> tuple[str, dict[str, str]]:
    """Start Charter, sign someone up, and return their id and a service key."""
    booted = boot(settings, SystemClock())
    try:
        with booted.db.writing() as session:
            add_staff(
                session,
                SystemClock(),
                booted.policy,
                actor="test",
                name="web",
                role="service_client",
            )
            service = bearer(create_key(session, SystemClock(), actor="test", staff_name="web").key)
    finally:
        booted.close()
    with started(settings) as client:
        response = client.post(
            "/v1/collect",
            headers=service,
            json={"collection_point": "sign_up", "fields": {"name": NAME, "email": EMAIL}},
        )
        assert response.status_code == 201, response.text
        person: str = response.json()["person_id"]
    return person, service


def read_back(settings: Settings, person: str, service: dict[str, str]) -> set[str]:
    with started(settings) as client:
        response = client.post(
            f"/v1/people/{person}/use",
            headers=service,
            json={"purpose": "service_support", "categories": ["identity.name", "contact.email"]},
        )
        assert response.status_code == 200, response.text
        return {value["value"] for value in response.json()["values"]}


def opens_store(url: str, key: bytes) -> bool:
    engine = make_engine(url)
    try:
        SqlKeyStore(engine, key)
    except MasterKeyMismatch:
        return False
    finally:
        engine.dispose()
    return True


@pytest.mark.slow
def test_init_creates_a_key_file_only_its_owner_can_read(home: Home) -> None:
    done = run(home, "init")

    assert done.returncode == 0, done.stderr
    assert home.key_file.stat().st_mode & 0o777 == 0o600
    key = home.key_file.read_text(encoding="ascii")
    assert len(decode_key(key)) == 32
    again = cli(home, "init")
    assert again.exit_code == 0, again.stderr
    assert home.key_file.read_text(encoding="ascii") == key


@pytest.mark.slow
def test_a_lost_key_file_is_not_replaced_and_nothing_starts(home: Home) -> None:
    assert cli(home, "init").exit_code == 0
    collect_someone(home.settings())
    home.key_file.unlink()

    served = run(home, "serve", CHARTER_PORT="1")
    initialised = cli(home, "init")

    assert_one_line_refusal(served.returncode, served.stderr, "no master key", "CHARTER_MASTER_KEY")
    assert_one_line_refusal(initialised.exit_code, initialised.stderr, "master key", "refusing")
    assert not home.key_file.exists()


def test_a_wrong_master_key_is_refused_at_start(home: Home) -> None:
    assert cli(home, "init").exit_code == 0
    other = encode_key(new_key())

    for command in ("serve", "init"):
        result = cli(home, command, CHARTER_MASTER_KEY=other)
        assert_one_line_refusal(result.exit_code, result.stderr, "does not match", "refusing")


@pytest.mark.parametrize("value", ["not a key", "c2hvcnQ=", "!!!!"])
def test_a_malformed_master_key_is_refused_in_one_line(home: Home, value: str) -> None:
    initialised = cli(home, "init", CHARTER_MASTER_KEY=value)
    assert_one_line_refusal(initialised.exit_code, initialised.stderr, "CHARTER_MASTER_KEY")
    assert not home.path.exists()  # refused before anything was made

    assert cli(home, "init").exit_code == 0
    served = cli(home, "serve", CHARTER_MASTER_KEY=value)
    assert_one_line_refusal(served.exit_code, served.stderr, "CHARTER_MASTER_KEY")


def test_rotation_replaces_the_key_file_and_data_collected_before_still_reads(home: Home) -> None:
    assert cli(home, "init").exit_code == 0
    person, service = collect_someone(home.settings())
    old = decode_key(home.key_file.read_text(encoding="ascii"))

    rotated = cli(home, "keys", "rotate-master", "--json")

    assert rotated.exit_code == 0, rotated.stderr
    assert json.loads(rotated.stdout) == {
        "keys_rewrapped": 1,
        "master_key_file": str(home.key_file),
    }
    new = decode_key(home.key_file.read_text(encoding="ascii"))
    assert new != old
    assert home.key_file.stat().st_mode & 0o777 == 0o600
    assert not home.pending_file.exists()
    assert read_back(home.settings(), person, service) == {NAME, EMAIL}
    assert not opens_store(home.keystore_url(), old)
    engine = make_engine(home.settings().database_url)
    try:
        with engine.connect() as connection:
            entries = connection.execute(
                select(AuditEntry.action, AuditEntry.actor, AuditEntry.details)
                .where(AuditEntry.action.like("vault:master_key:%"))
                .order_by(AuditEntry.seq)
            ).all()
    finally:
        engine.dispose()
    # The intent is recorded before the key store is touched, the outcome after.
    [(started, by, intent), (rotated, same_by, outcome)] = entries
    assert (started, rotated) == ("vault:master_key:rotation_started", "vault:master_key:rotated")
    assert by.startswith("cli:")
    assert same_by == by
    procedure = json.loads(intent)["procedure"]
    assert json.loads(outcome) == {"keys": 1, "procedure": procedure, "resumed": False}


def test_rotation_with_the_key_in_the_environment_prints_the_new_key_once(home: Home) -> None:
    old = encode_key(new_key())
    assert cli(home, "init", CHARTER_MASTER_KEY=old).exit_code == 0
    assert not home.key_file.exists()
    settings = home.settings(CHARTER_MASTER_KEY=old)
    person, service = collect_someone(settings)

    rotated = cli(home, "keys", "rotate-master", CHARTER_MASTER_KEY=old)

    assert rotated.exit_code == 0, rotated.stderr
    [new] = rotated.stdout.splitlines()
    assert "CHARTER_MASTER_KEY" in rotated.stderr
    assert new not in rotated.stderr
    assert not home.key_file.exists()
    assert read_back(home.settings(CHARTER_MASTER_KEY=new), person, service) == {NAME, EMAIL}
    refused = cli(home, "serve", CHARTER_MASTER_KEY=old)
    assert_one_line_refusal(refused.exit_code, refused.stderr, "does not match")
    again = cli(home, "keys", "rotate-master", "--json", CHARTER_MASTER_KEY=new)
    assert again.exit_code == 0, again.stderr
    newer = json.loads(again.stdout)["master_key"]
    assert opens_store(home.keystore_url(), decode_key(newer))


def test_a_rotation_interrupted_after_the_rewrap_is_finished_at_start(home: Home) -> None:
    assert cli(home, "init").exit_code == 0
    person, service = collect_someone(home.settings())
    old = decode_key(home.key_file.read_text(encoding="ascii"))
    new = new_key()
    # The state a crash leaves between the re-wrap and the replacement of the key file: the
    # intent recorded, the new key written, the store re-wrapped, and no outcome.
    record_intent(home, old, new)
    home.pending_file.write_text(encode_key(new) + "\n", encoding="ascii")
    home.pending_file.chmod(0o600)
    engine = make_engine(home.keystore_url())
    try:
        SqlKeyStore(engine, old).rewrap(new)
    finally:
        engine.dispose()

    started_again = cli(home, "init")

    assert started_again.exit_code == 0, started_again.stderr
    assert decode_key(home.key_file.read_text(encoding="ascii")) == new
    assert not home.pending_file.exists()
    assert read_back(home.settings(), person, service) == {NAME, EMAIL}
    # The outcome the crash did not record is recorded by the start that finished it.
    [(_, outcome)] = rotation_entries(home, "vault:master_key:rotated")
    assert (outcome["keys"], outcome["resumed"]) == (None, True)


def test_a_rotation_interrupted_before_the_rewrap_leaves_the_old_key_working(home: Home) -> None:
    assert cli(home, "init").exit_code == 0
    person, service = collect_someone(home.settings())
    key = home.key_file.read_text(encoding="ascii")
    pending = new_key()
    record_intent(home, decode_key(key), pending)
    home.pending_file.write_text(encode_key(pending) + "\n", encoding="ascii")

    assert read_back(home.settings(), person, service) == {NAME, EMAIL}
    assert home.key_file.read_text(encoding="ascii") == key
    refused = cli(home, "keys", "rotate-master")
    assert_one_line_refusal(refused.exit_code, refused.stderr, "master.key.new", "remove it")
    assert home.key_file.read_text(encoding="ascii") == key

    home.pending_file.unlink()
    rotated = cli(home, "keys", "rotate-master")
    assert rotated.exit_code == 0, rotated.stderr
    assert read_back(home.settings(), person, service) == {NAME, EMAIL}
    # The rotation that never re-wrapped is recorded as abandoned; the new one as done.
    [(_, abandoned)] = rotation_entries(home, "vault:master_key:rotation_abandoned")
    [(_, done)] = rotation_entries(home, "vault:master_key:rotated")
    assert abandoned["procedure"] != done["procedure"]
    assert (done["keys"], done["resumed"]) == (1, False)


def record_intent(home: Home, old: bytes, new: bytes) -> None:
    """The intent `charter keys rotate-master` records before it touches the key store."""
    db = Database.connect(home.settings().database_url)
    try:
        start_rotation(db, SystemClock(), actor="cli:test", old=old, new=new)
    finally:
        db.dispose()


def rotation_entries(home: Home, action: str) -> list[tuple[str, dict[str, object]]]:
    engine = make_engine(home.settings().database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                select(AuditEntry.actor, AuditEntry.details)
                .where(AuditEntry.action == action)
                .order_by(AuditEntry.seq)
            ).all()
    finally:
        engine.dispose()
    return [(actor, json.loads(details)) for actor, details in rows]


def test_rotation_without_a_master_key_refuses(home: Home) -> None:
    assert cli(home, "init", CHARTER_MASTER_KEY=encode_key(new_key())).exit_code == 0
    result = cli(home, "keys", "rotate-master")

    assert_one_line_refusal(result.exit_code, result.stderr, "no master key")
    assert not home.key_file.exists()
