"""Erasure across two databases survives a crash at every step (DESIGN.md: "Across two
databases, a recorded procedure"): the real server is killed with SIGKILL while it erases,
held at each step by a lock the test takes on the real database, and started again.

After the restart the person is erased (keys gone, data gone), the audit log records the
erasure once, and nobody else's data is touched. Keys made for a write that rolled back are
destroyed by the same recovery."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from charter.clock import FixedClock
from charter.db import Database, make_engine
from charter.policy.compiled import CompiledPolicy
from charter.vault.collection import Submission, collect
from charter.vault.crypto import decode_key
from charter.vault.keystore import SqlKeyStore
from charter.vault.recovery import recover
from tests.crash import holding_writes, scalar, wait_for
from tests.serving import Server, charter, service_key

pytestmark = [pytest.mark.slow, pytest.mark.clause("C2", "C3")]

NAME = "Ottoline Example"
EMAIL = "ottoline@example.com"


@dataclass
class Scene:
    """A server with two people, one of them about to be erased."""

    env: dict[str, str]
    server: Server
    service: dict[str, str]
    officer: dict[str, str]
    victim: str
    bystander: str

    @property
    def data_url(self) -> str:
        return self.env["CHARTER_DATABASE_URL"]

    @property
    def keys_url(self) -> str:
        return self.env["CHARTER_KEYSTORE_URL"]

    def has_key(self, person_id: str) -> bool:
        sql = "SELECT COUNT(*) FROM data_keys WHERE person_id = :p"
        return scalar(self.keys_url, sql, p=person_id) == 1

    def erasures_started(self) -> int:
        sql = "SELECT COUNT(*) FROM procedures WHERE kind = 'erasure'"
        return int(str(scalar(self.data_url, sql)))

    def entries(self, action: str) -> int:
        sql = "SELECT COUNT(*) FROM audit_entries WHERE action = :a"
        return int(str(scalar(self.data_url, sql, a=action)))

    def erase_in_background(self) -> threading.Thread:
        def erase() -> None:
            with contextlib.suppress(httpx.TransportError):
                httpx.delete(
                    f"{self.server.base}/v1/people/{self.victim}", headers=self.officer, timeout=120
                )

        thread = threading.Thread(target=erase, daemon=True)
        thread.start()
        return thread


def sign_up(base: str, service: dict[str, str], name: str, email: str, visitor: str) -> str:
    response = httpx.post(
        f"{base}/v1/collect",
        headers=service,
        json={
            "collection_point": "sign_up",
            "person": {"visitor_id": visitor},
            "fields": {"name": name, "email": email},
        },
        timeout=30,
    )
    assert response.status_code == 201, response.text
    person: str = response.json()["person_id"]
    return person


@pytest.fixture
def scene(environment: dict[str, str], server: Callable[[], Server]) -> Scene:
    charter(environment, "init")
    service = service_key(environment)
    charter(environment, "staff", "add", "officer", "--role", "privacy_officer")
    key = json.loads(charter(environment, "keys", "create", "--staff", "officer", "--json"))
    running = server()
    victim = sign_up(running.base, service, NAME, EMAIL, "vid-crash-victim")
    bystander = sign_up(running.base, service, "Basil Example", "basil@example.com", "vid-crash-b")
    return Scene(
        environment,
        running,
        service,
        {"Authorization": f"Bearer {key['key']}"},
        victim,
        bystander,
    )


def assert_erased_once_and_nothing_else_lost(scene: Scene, restarted: Server) -> None:
    def read(person: str) -> httpx.Response:
        return httpx.post(
            f"{restarted.base}/v1/people/{person}/use",
            headers=scene.service,
            json={"purpose": "registration_authentication", "categories": ["identity.name"]},
            timeout=30,
        )

    victim = read(scene.victim)
    bystander = read(scene.bystander)

    assert not scene.has_key(scene.victim)
    assert scene.has_key(scene.bystander)
    records = "SELECT COUNT(*) FROM records WHERE person_id = :p"
    assert scalar(scene.data_url, records, p=scene.victim) == 0
    assert scalar(scene.data_url, records, p=scene.bystander) == 2
    assert (victim.status_code, victim.json()["error"]["code"]) == (403, "person_erased")
    assert [v["value"] for v in bystander.json()["values"]] == ["Basil Example"]
    assert scene.entries("vault:erasure:started") == 1
    assert scene.entries("vault:person:erased") == 1
    # Asked again, the erasure is over: nothing more to do, nothing recorded twice.
    again = httpx.delete(
        f"{restarted.base}/v1/people/{scene.victim}", headers=scene.officer, timeout=30
    )
    assert again.json() == {
        "person_id": scene.victim,
        "keys_destroyed": 0,
        "records_deleted": 0,
        "events_deleted": 0,
    }
    assert scene.entries("vault:person:erased") == 1


def test_killed_after_the_intent_before_the_keys_the_restart_finishes_it(
    scene: Scene, server: Callable[[], Server]
) -> None:
    with holding_writes(scene.keys_url, "data_keys"):
        scene.erase_in_background()
        wait_for(lambda: scene.erasures_started() == 1, "the intent is committed")
        scene.server.kill()
        assert scene.has_key(scene.victim)
        assert scene.entries("vault:person:erased") == 0

    restarted = server()

    assert_erased_once_and_nothing_else_lost(scene, restarted)


def test_killed_after_the_keys_before_the_data_the_restart_finishes_it(
    scene: Scene, server: Callable[[], Server]
) -> None:
    records = "SELECT COUNT(*) FROM records WHERE person_id = :p"
    with contextlib.ExitStack() as key_store_held:
        key_store_held.enter_context(holding_writes(scene.keys_url, "data_keys"))
        scene.erase_in_background()
        wait_for(lambda: scene.erasures_started() == 1, "the intent is committed")
        with holding_writes(scene.data_url, "records"):
            key_store_held.close()  # the keys go; the data waits for the lock held here
            wait_for(lambda: not scene.has_key(scene.victim), "the keys are destroyed")
            scene.server.kill()
            assert scalar(scene.data_url, records, p=scene.victim) == 2
            assert scene.entries("vault:person:erased") == 0

    restarted = server()

    assert_erased_once_and_nothing_else_lost(scene, restarted)


def test_killed_before_the_intent_nothing_is_erased_and_a_retry_erases(
    scene: Scene, server: Callable[[], Server]
) -> None:
    with holding_writes(scene.data_url, "procedures"):
        scene.erase_in_background()
        scene.server.kill()  # before or while it waits for the database: nothing committed

    restarted = server()
    assert scene.erasures_started() == 0
    assert scene.has_key(scene.victim)
    retried = httpx.delete(
        f"{restarted.base}/v1/people/{scene.victim}", headers=scene.officer, timeout=30
    )
    assert retried.status_code == 200, retried.text
    assert retried.json()["records_deleted"] == 2
    assert_erased_once_and_nothing_else_lost(scene, restarted)


@pytest.fixture
def own_keys(database_url_factory: Callable[[], str], master: bytes) -> Iterator[SqlKeyStore]:
    """A key store of the test's own: what it holds is only what the test made."""
    store = SqlKeyStore(make_engine(database_url_factory()), master)
    yield store
    store.engine.dispose()


def test_keys_made_for_a_write_that_rolled_back_are_destroyed_by_the_recovery(
    committed_db: Database, own_keys: SqlKeyStore, omni_compiled: CompiledPolicy
) -> None:
    keys = own_keys
    # The key store notes when keys are made on the real clock; recovery looks an hour on.
    clock = FixedClock(dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))

    def sign_up_here(session: Session, name: str, email: str) -> str:
        return collect(
            session,
            keys,
            clock,
            omni_compiled,
            actor="test",
            submission=Submission("sign_up", {"name": name, "email": email}),
        ).person_id

    class RolledBack(Exception):
        pass

    made: list[str] = []

    def doomed() -> None:
        with committed_db.writing() as session:
            made.append(sign_up_here(session, "Rolf Example", "rolf@example.com"))
            raise RolledBack

    with pytest.raises(RolledBack):
        doomed()
    [orphan] = made
    with committed_db.writing() as session:
        kept = sign_up_here(session, "Kate Example", "kate@example.com")
    assert keys.sealer(orphan) is not None  # made before the data was to commit

    done = recover(committed_db, keys, clock, key_grace=dt.timedelta(0))

    assert keys.sealer(orphan) is None
    assert keys.sealer(kept) is not None
    assert (done.orphaned_keys_destroyed, done.keys_kept) == (1, 1)
    # Settled once: a second recovery finds nothing to do.
    assert recover(committed_db, keys, clock, key_grace=dt.timedelta(0)).keys_kept == 0
    with committed_db.reading() as session:
        entry = session.execute(
            sa.text("SELECT details FROM audit_entries WHERE action = :a"),
            {"a": "vault:keys:orphans_destroyed"},
        ).scalar_one()
    assert json.loads(entry) == {"keys": 1}


def test_resume_erasures_finishes_an_interrupted_erasure_and_destroys_orphaned_keys(
    scene: Scene, server: Callable[[], Server]
) -> None:
    with holding_writes(scene.keys_url, "data_keys"):
        scene.erase_in_background()
        wait_for(lambda: scene.erasures_started() == 1, "the intent is committed")
        scene.server.kill()
    master = decode_key(
        (Path(scene.env["CHARTER_HOME"]) / "secrets" / "master.key").read_text("ascii")
    )
    engine = make_engine(scene.keys_url)
    try:
        SqlKeyStore(engine, master).sealers(["ghost-of-a-rolled-back-write"], create=True)
    finally:
        engine.dispose()

    done = json.loads(
        charter(scene.env, "people", "resume-erasures", "--keys-older-than", "0", "--json")
    )

    assert done == {
        "erasures_finished": [scene.victim],
        "keys_kept": 1,  # the bystander's, made at sign-up and committed
        "orphaned_keys_destroyed": 1,
    }
    assert not scene.has_key("ghost-of-a-rolled-back-write")
    assert_erased_once_and_nothing_else_lost(scene, server())
