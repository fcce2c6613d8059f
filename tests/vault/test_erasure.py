"""Erasure (DESIGN.md "Keys apart from data"): `DELETE /v1/people/{id}` destroys the person's
keys, so nothing of theirs decrypts again, not even from a copy of the data taken before."""

from __future__ import annotations

import json
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from charter.clock import FixedClock
from charter.db import Database, make_engine
from charter.policy.compiled import CompiledPolicy
from charter.settings import Settings
from charter.staff.service import add_staff, create_key
from charter.vault.crypto import DecryptionFailed, Sealer
from charter.vault.erasure import erase_person
from charter.vault.events import (
    IncomingEvent,
    plan_batch,
    prepare_batch,
    record_events,
    store_batch,
)
from charter.vault.keystore import SqlKeyStore
from charter.vault.sealing import event_ad, record_ad
from charter.web.app import create_app
from tests.conftest import BACKEND, bearer
from tests.vault.test_people_events import visitor_person

NAME = "Zebulon Testperson"
EMAIL = "zebulon.testperson@example.com"
IP = "192.0.2.44"
VISITOR = "visitor-cookie-erasure-0001"
OTHER_NAME = "Philippa Quillfeather"
OTHER_EMAIL = "philippa.quillfeather@example.org"


@dataclass(frozen=True)
class SealedRow:
    table: str
    id: int
    person_id: str
    sealed: bytes
    # What the ciphertext is bound to: its row, person and labels (vault.sealing).
    associated: bytes


@dataclass
class Live:
    """The service on a database whose writes really commit, with its key store and keys."""

    client: TestClient
    db: Database
    keys: SqlKeyStore
    service: dict[str, str]
    officer: dict[str, str]


@pytest.fixture
def live(
    committed_db: Database,
    keys: SqlKeyStore,
    settings: Settings,
    omni_compiled: CompiledPolicy,
    clock: FixedClock,
) -> Iterator[Live]:
    app = create_app(settings, omni_compiled, committed_db, keys, clock=clock)
    api_keys = {}
    for role in ("service_client", "privacy_officer"):
        name = role.replace("_", "-")
        with committed_db.writing() as session:
            add_staff(session, clock, omni_compiled, actor="test", name=name, role=role)
            api_keys[role] = create_key(session, clock, actor="test", staff_name=name).key
    with TestClient(app) as client:
        yield Live(
            client,
            committed_db,
            keys,
            bearer(api_keys["service_client"]),
            bearer(api_keys["privacy_officer"]),
        )


def collect(client: TestClient, service: dict[str, str], body: dict[str, object]) -> str:
    response = client.post("/v1/collect", headers=service, json=body)
    assert response.status_code == 201, response.text
    person_id: str = response.json()["person_id"]
    return person_id


def post_events(client: TestClient, service: dict[str, str], key: str, who: dict[str, str]) -> None:
    events = [
        {"type": "page_view", "time": f"2026-11-25T09:00:0{n}Z", "ip": IP, "path": "/a", **who}
        for n in range(3)
    ]
    response = client.post(
        "/v1/events", headers=service, json={"idempotency_key": key, "events": events}
    )
    assert response.status_code == 200, response.text


def sealed_rows(db: Database, tmp_path: Path) -> list[SealedRow]:
    """Every sealed value, read from a copy of the data: a copy of the SQLite files, or on
    PostgreSQL the rows themselves, selected into memory."""
    if db.is_sqlite:
        source = Path(db.engine.url.database or "")
        copy = tmp_path / "backup" / source.name
        copy.parent.mkdir()
        for suffix in ("", "-wal"):
            if Path(f"{source}{suffix}").exists():
                shutil.copyfile(f"{source}{suffix}", f"{copy}{suffix}")
        engine = make_engine(f"sqlite:///{copy}")
    else:
        engine = db.engine
    try:
        with engine.connect() as connection:
            records = connection.execute(
                text(
                    "SELECT id, person_id, sealed, collection_point, field, category, source, "
                    "source_name FROM records"
                )
            )
            events = connection.execute(
                text("SELECT uid, person_id, sealed, kind, collection_point FROM events")
            )
            return [
                *(
                    SealedRow("records", r.id, r.person_id, bytes(r.sealed), record_ad(r))
                    for r in records
                ),
                *(
                    SealedRow(
                        "events",
                        e.uid,
                        e.person_id,
                        bytes(e.sealed),
                        event_ad(e.uid, e.person_id, e.kind, e.collection_point),
                    )
                    for e in events
                ),
            ]
    finally:
        if engine is not db.engine:
            engine.dispose()


def every_sealer(keys: SqlKeyStore) -> dict[str, Sealer]:
    """Every data key still in the key store."""
    with keys.engine.connect() as connection:
        ids = connection.execute(text("SELECT person_id FROM data_keys")).scalars().all()
    return keys.sealers([i for i in ids if not i.startswith("__")], create=False)


def opens(sealer: Sealer, row: SealedRow) -> bool:
    try:
        sealer.open(row.sealed, row.associated)
    except DecryptionFailed:
        return False
    return True


@pytest.mark.clause("C2")
def test_only_the_privacy_officer_may_erase(
    client: TestClient, make_key: Callable[[str], str]
) -> None:
    service = bearer(make_key("service_client"))
    person = collect(
        client,
        service,
        {"collection_point": "sign_up", "fields": {"name": NAME, "email": EMAIL}},
    )
    for role in ("service_client", "support_agent", "marketing", "recruiter"):
        refused = client.delete(f"/v1/people/{person}", headers=bearer(make_key(role)))
        assert refused.status_code == 403, role
        assert refused.json()["error"]["code"] == "permission_denied"
    used = client.post(
        f"/v1/people/{person}/use",
        headers=service,
        json={"purpose": "service_support", "categories": ["identity.name"]},
    )
    assert [v["value"] for v in used.json()["values"]] == [NAME]

    erased = client.delete(f"/v1/people/{person}", headers=bearer(make_key("privacy_officer")))
    assert erased.status_code == 200, erased.text


@pytest.mark.clause("C2", "C14")
def test_nothing_of_an_erased_person_decrypts_even_from_an_earlier_copy(
    live: Live, master: bytes, tmp_path: Path
) -> None:
    client, service, officer = live.client, live.service, live.officer
    committed_db, keys = live.db, live.keys
    # A visitor browses and subscribes, then signs up from the same cookie: their history
    # becomes the user's (C14), and so must go with the user.
    post_events(client, service, "visitor-batch-1", {"visitor_id": VISITOR})
    visitor = collect(
        client,
        service,
        {
            "collection_point": "subscription_contact",
            "person": {"visitor_id": VISITOR},
            "fields": {"email": EMAIL},
        },
    )
    user = collect(
        client,
        service,
        {
            "collection_point": "sign_up",
            "person": {"visitor_id": VISITOR},
            "fields": {"name": NAME, "email": EMAIL},
        },
    )
    post_events(client, service, "user-batch-1", {"person_id": user})
    other = collect(
        client,
        service,
        {"collection_point": "sign_up", "fields": {"name": OTHER_NAME, "email": OTHER_EMAIL}},
    )
    post_events(client, service, "other-batch-1", {"person_id": other})
    before = sealed_rows(committed_db, tmp_path)
    theirs = [row for row in before if row.person_id in {user, visitor}]
    others = [row for row in before if row.person_id == other]
    assert {row.person_id for row in theirs} == {user, visitor}
    assert len(theirs) == 3 + 1 + 2 + 3  # visitor events, subscription, sign-up, user events
    assert all(opens(keys.sealers([r.person_id], create=False)[r.person_id], r) for r in theirs)

    erased = client.delete(f"/v1/people/{user}", headers=officer)

    assert erased.status_code == 200, erased.text
    assert erased.json() == {
        "person_id": user,
        "keys_destroyed": 2,
        "records_deleted": 3,
        "events_deleted": 6,
    }
    fresh = SqlKeyStore(keys.engine, master)  # as another process would see it
    for store in (keys, fresh):
        assert store.sealer(user) is None
        assert store.sealer(visitor) is None
        remaining = every_sealer(store)
        assert other in remaining
        assert not [row for row in theirs for sealer in remaining.values() if opens(sealer, row)]
        assert all(opens(remaining[other], row) for row in others)
    with committed_db.reading() as session:
        for table in ("records", "events"):
            left = session.execute(
                text(f"SELECT COUNT(*) FROM {table} WHERE person_id IN (:u, :v)"),  # noqa: S608
                {"u": user, "v": visitor},
            ).scalar_one()
            assert left == 0, table
    refused = client.post(
        f"/v1/people/{user}/use",
        headers=service,
        json={"purpose": "service_support", "categories": ["identity.name"]},
    )
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "person_erased"


@pytest.mark.clause("C3")
def test_the_erasure_audit_entry_keeps_no_personal_data(
    client: TestClient, make_key: Callable[[str], str]
) -> None:
    service = bearer(make_key("service_client"))
    officer = bearer(make_key("privacy_officer"))
    post_events(client, service, "audit-visitor-1", {"visitor_id": VISITOR})
    person = collect(
        client,
        service,
        {
            "collection_point": "sign_up",
            "person": {"visitor_id": VISITOR},
            "fields": {"name": NAME, "email": EMAIL},
        },
    )
    assert client.delete(f"/v1/people/{person}", headers=officer).status_code == 200

    entries = client.get("/v1/audit", headers=officer, params={"limit": 1000}).json()["entries"]
    [started] = [e for e in entries if e["action"] == "vault:erasure:started"]
    [erasure] = [e for e in entries if e["action"] == "vault:person:erased"]
    assert started["target"] == erasure["target"] == f"person:{person}"
    # Counts, and the id of the recorded procedure (hex): nothing else.
    procedure = erasure["details"].pop("procedure")
    assert started["details"].pop("procedure") == procedure
    assert re.fullmatch(r"[0-9a-f]{32}", procedure)
    assert all(isinstance(value, int) for value in erasure["details"].values())
    assert all(isinstance(value, int) for value in started["details"].values())
    assert erasure["details"]["keys_destroyed"] == 2
    everything = json.dumps(entries).lower()
    for value in (NAME, EMAIL, IP, VISITOR):
        assert value.lower() not in everything


def test_erasing_twice_is_safe(client: TestClient, make_key: Callable[[str], str]) -> None:
    service = bearer(make_key("service_client"))
    officer = bearer(make_key("privacy_officer"))
    person = collect(
        client,
        service,
        {"collection_point": "sign_up", "fields": {"name": NAME, "email": EMAIL}},
    )
    first = client.delete(f"/v1/people/{person}", headers=officer)
    second = client.delete(f"/v1/people/{person}", headers=officer)

    assert first.status_code == second.status_code == 200
    assert first.json()["keys_destroyed"] == 1
    assert first.json()["records_deleted"] == 2
    assert second.json() == {
        "person_id": person,
        "keys_destroyed": 0,
        "records_deleted": 0,
        "events_deleted": 0,
    }
    unknown = client.delete("/v1/people/no-such-person", headers=officer)
    assert unknown.status_code == 404
    # Nothing more is collected about them.
    again = client.post(
        "/v1/collect",
        headers=service,
        json={
            "collection_point": "order",
            "person": {"person_id": person},
            "fields": {
                "name": NAME,
                "email": EMAIL,
                "billing_address": "1 Example Road",
                "items": "widget",
                "payment_reference": "PAYREF-TEST",
            },
        },
    )
    assert again.status_code == 409


@pytest.mark.clause("C14")
def test_erasing_by_the_id_of_a_visitor_who_signed_up_erases_the_user(
    client: TestClient, db: Database, keys: SqlKeyStore, make_key: Callable[[str], str]
) -> None:
    service = bearer(make_key("service_client"))
    officer = bearer(make_key("privacy_officer"))
    post_events(client, service, "merged-visitor-1", {"visitor_id": VISITOR})
    visitor = visitor_person(db, keys, VISITOR)
    user = collect(
        client,
        service,
        {
            "collection_point": "sign_up",
            "person": {"visitor_id": VISITOR},
            "fields": {"name": NAME, "email": EMAIL},
        },
    )

    erased = client.delete(f"/v1/people/{visitor}", headers=officer)

    assert erased.status_code == 200, erased.text
    assert erased.json() == {
        "person_id": user,
        "keys_destroyed": 2,
        "records_deleted": 2,
        "events_deleted": 3,
    }
    refused = client.post(
        f"/v1/people/{user}/use",
        headers=service,
        json={"purpose": "registration_authentication", "categories": ["identity.name"]},
    )
    assert refused.status_code == 403
    assert refused.json()["decision"]["code"] == "person_erased"


def _people_waiting_for_a_lock(db: Database) -> int:
    with db.engine.connect() as connection:
        return int(
            connection.execute(
                text(
                    "SELECT COUNT(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            ).scalar_one()
        )


@pytest.mark.skipif(
    BACKEND != "postgres", reason="SQLite runs one writer at a time: nothing can overlap"
)
def test_an_erasure_while_a_batch_for_the_person_is_being_stored_leaves_none_of_it(
    committed_db: Database, keys: SqlKeyStore, clock: FixedClock, omni_compiled: CompiledPolicy
) -> None:
    def click(number: int) -> IncomingEvent:
        return IncomingEvent(kind="click", time=clock.now(), visitor_id=VISITOR, item=f"{number}")

    with committed_db.writing() as session:
        record_events(
            session,
            keys,
            clock,
            omni_compiled,
            actor="test",
            batch_key="race-0001",
            events=[click(1)],
        )
    visitor = visitor_person(committed_db, keys, VISITOR)
    assert visitor is not None
    batch = prepare_batch(keys, clock, batch_key="race-0002", events=[click(2)])
    with committed_db.reading() as session:
        planned = plan_batch(session, keys, clock, omni_compiled, batch)

    def erase() -> None:
        erase_person(committed_db, keys, clock, actor="test", person_id=visitor)

    erasure = threading.Thread(target=erase)
    with committed_db.writing() as session:
        store_batch(session, keys, clock, omni_compiled, actor="test", batch=batch, planned=planned)
        # The batch is written but not committed when the erasure starts: the erasure must
        # wait for it (and then delete it too), not finish around it.
        erasure.start()
        deadline = time.monotonic() + 60
        while erasure.is_alive() and not _people_waiting_for_a_lock(committed_db):
            assert time.monotonic() < deadline, "the erasure neither waited nor finished"
            time.sleep(0.01)  # polling for the erasure to reach its lock, not measuring
    erasure.join(timeout=60)

    with committed_db.reading() as session:
        left = session.execute(
            text("SELECT COUNT(*) FROM events WHERE person_id = :p"), {"p": visitor}
        ).scalar_one()
    assert left == 0
