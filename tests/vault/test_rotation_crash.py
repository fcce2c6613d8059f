"""A master key rotation survives a crash at every step (DESIGN.md: "Across two databases, a
recorded procedure"): the real `charter keys rotate-master` is held at each step by a lock
the test takes on the real database, killed there with SIGKILL, and Charter is started again
(`charter serve`).

After the restart every person's data reads with the key file then in place: the old key if
the crash came before the re-wrap committed, the new one if after. The audit log records the
rotation's intent once and its outcome once: "rotated" where the new key is the one in use
(recorded by the start that finds it so), "rotation_abandoned" where it never took (recorded
by the next rotation, which the leftover key file stops until it is removed: a start cannot
tell a dead rotation from one still running). Two starts at once record the outcome once; and
with CHARTER_MASTER_KEY, the new key is printed before the crash could lose it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from typer.testing import CliRunner, Result

from charter.boot import boot, prepare_home
from charter.cli.main import build_app
from charter.clock import SystemClock
from charter.db import make_engine
from charter.settings import Settings
from charter.staff.service import add_staff, create_key
from charter.vault.crypto import decode_key, encode_key, new_key
from charter.vault.keystore import MasterKeyMismatch, SqlKeyStore
from charter.vault.rotation import fingerprint
from charter.web.app import create_app
from tests.conftest import BACKEND, bearer
from tests.crash import holding_writes, on_postgres, rows, scalar, wait_for, waiting_for_locks
from tests.serving import CHARTER, Server

pytestmark = [pytest.mark.slow, pytest.mark.clause("C2", "C3")]

PEOPLE = {
    "Imelda Example": "imelda@example.com",
    "Jasper Example": "jasper@example.com",
    "Kirsten Example": "kirsten@example.com",
}
STARTED = "vault:master_key:rotation_started"
ROTATED = "vault:master_key:rotated"
ABANDONED = "vault:master_key:rotation_abandoned"


@dataclass
class Scene:
    """A data folder with three people signed up (by a Charter since stopped), to rotate."""

    env: dict[str, str]
    service: dict[str, str]
    people: dict[str, set[str]]  # person id -> the values collected
    log: Path
    rotating: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def data_url(self) -> str:
        return self.env["CHARTER_DATABASE_URL"]

    @property
    def keys_url(self) -> str:
        return self.env["CHARTER_KEYSTORE_URL"]

    @property
    def key_file(self) -> Path:
        return Path(self.env["CHARTER_HOME"]) / "secrets" / "master.key"

    @property
    def pending_file(self) -> Path:
        return self.key_file.with_name("master.key.new")

    def key(self) -> bytes:
        return decode_key(self.key_file.read_text(encoding="ascii"))

    def pending_written(self) -> bool:
        """The new key is in the pending file, whole (it is written, then synced)."""
        try:
            return self.pending_file.read_text(encoding="ascii").endswith("\n")
        except FileNotFoundError:
            return False

    def reported(self) -> bool:
        """The rotation printed its result (what it prints before recording its outcome)."""
        return self.log.exists() and self.log.read_text().strip() != ""

    def check_row(self) -> object:
        """The store's wrapped check value: it changes when a re-wrap commits."""
        sql = "SELECT wrapped FROM data_keys WHERE person_id = '__master_key_check__'"
        return scalar(self.keys_url, sql)

    def opens_store(self, key: bytes) -> bool:
        engine = make_engine(self.keys_url)
        try:
            SqlKeyStore(engine, key)
        except MasterKeyMismatch:
            return False
        finally:
            engine.dispose()
        return True

    def rotations(self) -> list[tuple[str, str]]:
        """(state, fingerprint of the new key) of each rotation recorded, oldest first."""
        found = rows(
            self.data_url,
            "SELECT state, details FROM procedures "
            "WHERE kind = 'master_key_rotation' ORDER BY started_at",
        )
        return [(state, json.loads(details)["new"]) for state, details in found]

    def entries(self) -> list[tuple[str, dict[str, object]]]:
        """The audit log's entries of master key rotation, in order."""
        found = rows(
            self.data_url,
            "SELECT action, details FROM audit_entries "
            "WHERE action LIKE 'vault:master_key:%' ORDER BY seq",
        )
        return [(action, json.loads(details)) for action, details in found]

    def rotate_in_background(self) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as log:
            self.rotating.append(
                subprocess.Popen(
                    [CHARTER, "keys", "rotate-master", "--json"],
                    env=self.env,
                    stdout=log,
                    stderr=log,
                )
            )
        return self.rotating[-1]

    def close(self) -> None:
        """Kill what a failed test left running."""
        for process in self.rotating:
            if process.poll() is None:
                process.kill()
            process.wait()

    def reads(self, client: httpx.Client | TestClient) -> dict[str, set[str]]:
        """What each person's data reads as, asked of a running Charter."""
        found = {}
        for person in self.people:
            response = client.post(
                f"/v1/people/{person}/use",
                headers=self.service,
                json={
                    "purpose": "service_support",
                    "categories": ["identity.name", "contact.email"],
                },
            )
            assert response.status_code == 200, response.text
            found[person] = {value["value"] for value in response.json()["values"]}
        return found


def cli(env: dict[str, str], *args: str) -> Result:
    """A `charter` command run in this process (the steps around the crash: the one that
    crashes, and the restart, are processes of their own)."""
    return CliRunner().invoke(build_app(), list(args), env=env)


@contextlib.contextmanager
def started(env: dict[str, str]) -> Iterator[TestClient]:
    """Charter started as `charter serve` starts it, serving in this process."""
    settings = Settings.from_env(env)
    booted = boot(settings, SystemClock())
    try:
        with TestClient(create_app(settings, booted.policy, booted.db, booted.keys)) as client:
            yield client
    finally:
        booted.close()


def make_scene(environment: dict[str, str], log: Path) -> Scene:
    """Initialise the data folder of `environment`, and sign up the people."""
    # As under a service manager, a command's output to a file or a pipe is buffered.
    env = {k: v for k, v in environment.items() if k != "PYTHONUNBUFFERED"}
    settings = Settings.from_env(env)
    prepare_home(settings)  # what `charter init` does before it starts Charter
    clock = SystemClock()
    booted = boot(settings, clock)
    people = {}
    try:
        with booted.db.writing() as session:
            add_staff(
                session, clock, booted.policy, actor="test", name="web", role="service_client"
            )
            service = bearer(create_key(session, clock, actor="test", staff_name="web").key)
        app = create_app(settings, booted.policy, booted.db, booted.keys)
        with TestClient(app) as client:
            for name, email in PEOPLE.items():
                response = client.post(
                    "/v1/collect",
                    headers=service,
                    json={"collection_point": "sign_up", "fields": {"name": name, "email": email}},
                )
                assert response.status_code == 201, response.text
                people[response.json()["person_id"]] = {name, email}
    finally:
        booted.close()
    return Scene(env, service, people, log)


@pytest.fixture
def scene(environment: dict[str, str], tmp_path: Path) -> Iterator[Scene]:
    made = make_scene(environment, tmp_path / "rotate.log")
    yield made
    made.close()


def kill(process: subprocess.Popen[bytes]) -> None:
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL


@contextlib.contextmanager
def holding_key_row(url: str, person_id: str) -> Iterator[None]:
    """Hold the lock of one row of the key store (PostgreSQL): a re-wrap writing its rows
    waits at this one, with those before it written and not committed."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection, connection.begin():
            connection.execute(
                sa.text("SELECT 1 FROM data_keys WHERE person_id = :p FOR UPDATE"),
                {"p": person_id},
            )
            yield
    finally:
        engine.dispose()


def rewrap_waits_to_write(url: str) -> bool:
    """Whether a re-wrap is writing the keys of the store at `url`, and waits for a row."""
    sql = (
        "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND wait_event_type = 'Lock' AND query LIKE 'UPDATE data_keys%'"
    )
    return scalar(url, sql) == 1


def assert_unfinished_then_abandoned_by_the_next_rotation(
    scene: Scene, server: Callable[[], Server], old: bytes
) -> None:
    """The store still opens with the old key: the restart serves everyone's data with it,
    and leaves the rotation unfinished; the next rotation, once the leftover key file is
    removed as it says, records the dead one abandoned and rotates."""
    pending = decode_key(scene.pending_file.read_text(encoding="ascii"))
    assert scene.rotations() == [("started", fingerprint(pending))]

    restarted = server()

    assert scene.key() == old
    with httpx.Client(base_url=restarted.base, timeout=30) as client:
        assert scene.reads(client) == scene.people
    assert scene.opens_store(old)
    assert not scene.opens_store(pending)
    [(action, intent)] = scene.entries()
    assert (action, intent["new_key"]) == (STARTED, fingerprint(pending))
    assert scene.rotations() == [("started", fingerprint(pending))]

    restarted.stop()
    refused = cli(scene.env, "keys", "rotate-master")
    assert refused.exit_code == 1
    assert "master.key.new exists" in refused.stderr
    assert "remove it" in refused.stderr
    scene.pending_file.unlink()
    rotated = cli(scene.env, "keys", "rotate-master", "--json")

    assert rotated.exit_code == 0, rotated.stderr
    assert json.loads(rotated.stdout)["keys_rewrapped"] == len(scene.people)
    newest = scene.key()
    with started(scene.env) as client:
        assert scene.reads(client) == scene.people
    assert not scene.opens_store(old)
    assert scene.rotations() == [
        ("abandoned", fingerprint(pending)),
        ("done", fingerprint(newest)),
    ]
    [first, abandoned, second, done] = scene.entries()
    assert (first[0], abandoned[0], second[0], done[0]) == (STARTED, ABANDONED, STARTED, ROTATED)
    assert abandoned[1]["procedure"] == first[1]["procedure"]
    assert done[1] == {"procedure": second[1]["procedure"], "keys": 3, "resumed": False}


def assert_rotated_once(
    scene: Scene, restarted: httpx.Client | TestClient, old: bytes, new: bytes
) -> None:
    """The store opens with the new key only, which is now the key file; everyone's data
    reads with it on the restarted Charter; the rotation is recorded started once and
    rotated once."""
    assert scene.key() == new
    assert not scene.pending_file.exists()
    assert scene.reads(restarted) == scene.people
    assert scene.opens_store(new)
    assert not scene.opens_store(old)
    assert scene.rotations() == [("done", fingerprint(new))]
    [(started, intent), (rotated, outcome)] = scene.entries()
    assert (started, intent["new_key"], rotated) == (STARTED, fingerprint(new), ROTATED)
    # The crash kept the count from being recorded; the start that found it done says so.
    assert outcome == {"procedure": intent["procedure"], "keys": None, "resumed": True}


def test_killed_after_the_intent_before_the_rewrap_the_old_key_still_reads_everything(
    scene: Scene, server: Callable[[], Server]
) -> None:
    old = scene.key()
    # EXCLUSIVE on PostgreSQL: the re-wrap waits to lock the store, before reading a key.
    with holding_writes(scene.keys_url, "data_keys", mode="EXCLUSIVE"):
        rotation = scene.rotate_in_background()
        wait_for(lambda: len(scene.rotations()) == 1, "the intent is committed")
        wait_for(scene.pending_written, "the new key is written beside the old")
        if on_postgres(scene.keys_url):
            wait_for(lambda: waiting_for_locks(scene.keys_url) == 1, "the re-wrap waits")
        kill(rotation)

    assert_unfinished_then_abandoned_by_the_next_rotation(scene, server, old)


@pytest.mark.skipif(
    BACKEND != "postgres",
    reason="SQLite's one writer holds its lock through the whole re-wrap: nothing can stop it "
    "midway, so the step is the one before it",
)
def test_killed_during_the_rewrap_none_of_it_is_kept_and_the_old_key_reads_everything(
    scene: Scene, server: Callable[[], Server]
) -> None:
    old = scene.key()
    # The re-wrap writes its rows in the order of their ids: held at the last person's, the
    # others are re-wrapped (and locked) but not committed.
    last = max(scene.people)
    with holding_key_row(scene.keys_url, last):
        rotation = scene.rotate_in_background()
        wait_for(lambda: rewrap_waits_to_write(scene.keys_url), "the re-wrap writes the keys")
        unlocked = scalar(
            scene.keys_url,
            "SELECT COUNT(*) FROM (SELECT 1 FROM data_keys WHERE person_id = ANY(:people) "
            "FOR UPDATE SKIP LOCKED) AS free",
            people=sorted(set(scene.people) - {last}),
        )
        assert unlocked == 0  # the other people's keys are re-wrapped, uncommitted
        kill(rotation)

    assert_unfinished_then_abandoned_by_the_next_rotation(scene, server, old)


def test_killed_after_the_rewrap_before_the_key_file_is_replaced_the_start_replaces_it(
    scene: Scene, server: Callable[[], Server]
) -> None:
    old = scene.key()
    # No lock holds a process between the re-wrap's commit and the rename of the key file:
    # the rename fails instead (a directory where the key file was), and the process stops
    # there as a crash would stop it. The key file is put back for the restart.
    aside = scene.key_file.with_name("master.key.aside")
    with holding_writes(scene.keys_url, "data_keys", mode="EXCLUSIVE"):
        rotation = scene.rotate_in_background()
        wait_for(scene.pending_written, "the new key is written beside the old")
        scene.key_file.rename(aside)
        scene.key_file.mkdir()
    assert rotation.wait(timeout=60) == 1
    scene.key_file.rmdir()
    aside.rename(scene.key_file)
    new = decode_key(scene.pending_file.read_text(encoding="ascii"))
    assert scene.key() == old
    assert scene.opens_store(new)
    assert not scene.opens_store(old)
    [refusal] = scene.log.read_text().splitlines()
    assert refusal.startswith("charter: the keys are re-wrapped under the new master key in ")
    assert str(scene.pending_file) in refusal
    assert [action for action, _ in scene.entries()] == [STARTED]

    restarted = server()

    with httpx.Client(base_url=restarted.base, timeout=30) as client:
        assert_rotated_once(scene, client, old, new)


def crash_after_the_key_file_is_replaced(scene: Scene) -> bytes:
    """Kill a rotation after it replaced the key file, before it recorded its outcome; the
    new key."""
    with contextlib.ExitStack() as key_store_held:
        key_store_held.enter_context(holding_writes(scene.keys_url, "data_keys", mode="EXCLUSIVE"))
        rotation = scene.rotate_in_background()
        wait_for(lambda: len(scene.rotations()) == 1, "the intent is committed")
        wait_for(scene.pending_written, "the new key is written beside the old")
        new = decode_key(scene.pending_file.read_text(encoding="ascii"))
        with holding_writes(scene.data_url, "procedures"):
            key_store_held.close()  # the re-wrap goes on; its outcome waits for this lock
            wait_for(lambda: not scene.pending_file.exists(), "the key file is replaced")
            wait_for(scene.reported, "the rotation reports its result")
            if on_postgres(scene.data_url):
                wait_for(lambda: waiting_for_locks(scene.data_url) == 1, "the outcome waits")
            kill(rotation)
    assert scene.key() == new
    assert json.loads(scene.log.read_text()) == {
        "keys_rewrapped": 3,
        "master_key_file": str(scene.key_file),
    }
    assert scene.rotations() == [("started", fingerprint(new))]
    return new


def test_killed_after_the_key_file_is_replaced_before_the_outcome_the_start_records_it(
    scene: Scene, server: Callable[[], Server]
) -> None:
    old = scene.key()
    new = crash_after_the_key_file_is_replaced(scene)

    restarted = server()

    with httpx.Client(base_url=restarted.base, timeout=30) as client:
        assert_rotated_once(scene, client, old, new)


@pytest.mark.skipif(
    BACKEND != "postgres",
    reason="SQLite's writers take turns: two starts cannot both be held between finding the "
    "rotation unfinished and recording its outcome",
)
def test_two_starts_at_once_after_the_crash_record_the_outcome_once(scene: Scene) -> None:
    old = scene.key()
    new = crash_after_the_key_file_is_replaced(scene)

    with holding_writes(scene.data_url, "procedures"), scene.log.open("ab") as log:
        starts = [
            subprocess.Popen([CHARTER, "init"], env=scene.env, stdout=log, stderr=log)
            for _ in range(2)
        ]
        try:
            wait_for(lambda: waiting_for_locks(scene.data_url) == 2, "both record the outcome")
        except AssertionError:
            for start in starts:
                start.kill()
            raise
    assert [start.wait(timeout=60) for start in starts] == [0, 0]
    assert [action for action, _ in scene.entries()] == [STARTED, ROTATED]

    with started(scene.env) as restarted:
        assert_rotated_once(scene, restarted, old, new)


@pytest.fixture
def scene_keyed_by_environment(environment: dict[str, str], tmp_path: Path) -> Iterator[Scene]:
    """A scene whose master key is CHARTER_MASTER_KEY: no key file."""
    key = encode_key(new_key())
    made = make_scene({**environment, "CHARTER_MASTER_KEY": key}, tmp_path / "rotate.log")
    yield made
    made.close()


def test_with_the_key_in_the_environment_killed_before_the_outcome_the_new_key_is_out(
    scene_keyed_by_environment: Scene, tmp_path: Path
) -> None:
    scene = scene_keyed_by_environment
    old = decode_key(scene.env["CHARTER_MASTER_KEY"])
    before = scene.check_row()
    with contextlib.ExitStack() as key_store_held:
        key_store_held.enter_context(holding_writes(scene.keys_url, "data_keys", mode="EXCLUSIVE"))
        rotation = scene.rotate_in_background()
        wait_for(lambda: len(scene.rotations()) == 1, "the intent is committed")
        with holding_writes(scene.data_url, "procedures"):
            key_store_held.close()  # the re-wrap goes on; its outcome waits for this lock
            wait_for(lambda: scene.check_row() != before, "the re-wrap is committed")
            if on_postgres(scene.data_url):
                wait_for(lambda: waiting_for_locks(scene.data_url) == 1, "the outcome waits")
            else:
                wait_for(scene.reported, "the rotation reports its result")
            kill(rotation)
    # The only copy of the new key is what the rotation printed: it must be out already.
    printed = scene.log.read_text()
    assert printed, "the new master key was never printed; no key opens the store"
    new = decode_key(json.loads(printed)["master_key"])
    assert not scene.opens_store(old)
    assert scene.rotations() == [("started", fingerprint(new))]

    restarted = Server({**scene.env, "CHARTER_MASTER_KEY": encode_key(new)}, tmp_path / "serve")
    try:
        restarted.wait_until_ready()
        with httpx.Client(base_url=restarted.base, timeout=30) as client:
            assert scene.reads(client) == scene.people
    finally:
        restarted.close()
    assert scene.opens_store(new)
    assert scene.rotations() == [("done", fingerprint(new))]
    [(started, intent), (rotated, outcome)] = scene.entries()
    assert (started, rotated) == (STARTED, ROTATED)
    assert outcome == {"procedure": intent["procedure"], "keys": None, "resumed": True}
