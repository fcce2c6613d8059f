"""People (visitors, users, customers) and log events through HTTP and the library
(C10, C12, C14, C16)."""

from __future__ import annotations

import datetime as dt
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import func, select

from charter.audit.models import AuditEntry
from charter.clock import FixedClock
from charter.db import Database
from charter.errors import Conflict, Unprocessable
from charter.policy.compiled import CompiledPolicy
from charter.vault import useragent
from charter.vault.events import (
    MAX_BATCH,
    IncomingEvent,
    plan_batch,
    prepare_batch,
    record_events,
    store_batch,
)
from charter.vault.identifiers import BlindIndex
from charter.vault.keystore import SqlKeyStore
from charter.vault.models import EventBatch, LogEvent, Person, VisitorId
from charter.vault.people import get_person
from tests.conftest import bearer
from tests.vault.calls import use

Headers = dict[str, str]
IPHONE_SAFARI = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)
DESKTOP_FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


def event(**fields: Any) -> dict[str, Any]:
    return {"type": "page_view", "time": "2026-11-25T10:00:00Z", **fields}


def post_events(
    client: TestClient, headers: Headers, key: str, events: list[dict[str, Any]]
) -> Response:
    return client.post(
        "/v1/events", headers=headers, json={"idempotency_key": key, "events": events}
    )


def sign_up(client: TestClient, headers: Headers, email: str, **person: Any) -> Response:
    return client.post(
        "/v1/collect",
        headers=headers,
        json={
            "collection_point": "sign_up",
            "person": person,
            "fields": {"name": "Ada Example", "email": email},
        },
    )


def stored_events(db: Database) -> int:
    with db.reading() as session:
        return session.scalar(select(func.count()).select_from(LogEvent)) or 0


def visitor_person(db: Database, keys: SqlKeyStore, visitor_id: str) -> str | None:
    with db.reading() as session:
        row = session.get(VisitorId, BlindIndex(keys.index_key()).visitor(visitor_id))
        return row.person_id if row is not None else None


# --- Visitors and users ---------------------------------------------------------------------


@pytest.mark.clause("C10")
def test_a_visitor_is_known_by_a_pseudonymous_visitor_id(
    client: TestClient, service: Headers, db: Database, keys: SqlKeyStore
) -> None:
    first = post_events(client, service, "visit-0001", [event(visitor_id="vid-3f9a", path="/")])
    assert first.status_code == 200, first.text
    second = post_events(
        client, service, "visit-0002", [event(visitor_id="vid-3f9a", path="/pricing")]
    )
    assert second.status_code == 200, second.text
    person = visitor_person(db, keys, "vid-3f9a")
    assert person is not None
    with db.reading() as session:
        assert get_person(session, person).kind == "visitor"
        assert {e.person_id for e in session.scalars(select(LogEvent))} == {person}
        assert {e.collection_point for e in session.scalars(select(LogEvent))} == {"log_data"}
        # The visitor id itself is nowhere: only its keyed hash.
        assert "vid-3f9a" not in set(session.scalars(select(VisitorId.index)))


@pytest.mark.clause("C14")
def test_sign_up_inherits_the_history_of_the_visitor_ids_it_came_from(
    client: TestClient, service: Headers, db: Database, keys: SqlKeyStore
) -> None:
    before = post_events(
        client,
        service,
        "visit-0010",
        [
            event(visitor_id="vid-laptop", path="/pricing", time="2026-11-20T09:00:00Z"),
            event(
                visitor_id="vid-phone", type="click", item="try-button", time="2026-11-21T09:00:00Z"
            ),
            event(visitor_id="vid-stranger", path="/careers"),
        ],
    )
    assert before.status_code == 200, before.text
    user = sign_up(
        client,
        service,
        "ada@example.com",
        visitor_id="vid-laptop",
        other_visitor_ids=["vid-phone"],
        customer_id="cust-0042",
    )
    assert user.status_code == 201, user.text
    user_id = user.json()["person_id"]

    after = post_events(
        client, service, "visit-0011", [event(visitor_id="vid-laptop", path="/app/dashboard")]
    )
    assert after.status_code == 200, after.text

    read = use(
        client,
        service,
        user_id,
        "service_improvement",
        ["usage.pages", "usage.clicks", "usage.time"],
    )
    assert read.status_code == 200, read.text
    values = {(v["field"], v["value"]) for v in read.json()["values"]}
    assert {
        ("path", "/pricing"),
        ("item", "try-button"),
        ("path", "/app/dashboard"),
        ("time", "2026-11-20T09:00:00+00:00"),
        ("time", "2026-11-21T09:00:00+00:00"),
    } <= values
    assert ("path", "/careers") not in values

    with db.reading() as session:
        stranger = visitor_person(db, keys, "vid-stranger")
        merged = {p.id: p.merged_into for p in session.scalars(select(Person))}
        assert merged[visitor_person(db, keys, "vid-laptop") or ""] == user_id
        assert merged[visitor_person(db, keys, "vid-phone") or ""] == user_id
        assert merged[stranger or ""] is None
        newest = session.scalars(select(LogEvent).where(LogEvent.person_id == user_id)).all()
        assert [(e.collection_point, e.kind) for e in newest] == [("user_activity", "page_view")]
        assert session.get(Person, user_id).customer_id == "cust-0042"


@pytest.mark.clause("C16")
def test_a_second_sign_up_with_an_address_reveals_nothing_and_gets_no_address(
    client: TestClient, service: Headers, db: Database
) -> None:
    first = sign_up(client, service, "ada@example.com")
    again = sign_up(client, service, "  ADA@Example.com ")
    fresh = sign_up(client, service, "grace@example.com")

    # Answered as any sign-up: the answer does not tell that the address has an account.
    assert (first.status_code, again.status_code, fresh.status_code) == (201, 201, 201)
    assert set(again.json()) == set(fresh.json())
    assert again.json()["stored_fields"] == fresh.json()["stored_fields"]
    with db.reading() as session:
        original = session.get(Person, first.json()["person_id"])
        second = session.get(Person, again.json()["person_id"])
        assert original is not None
        assert second is not None
        assert (original.email_index is not None, second.email_index) == (True, None)
        flagged = session.scalars(
            select(AuditEntry.details).where(AuditEntry.action == "vault:submission:collected")
        ).all()
    assert sum('"address_in_use":true' in details for details in flagged) == 1


@pytest.mark.clause("C14")
def test_a_visitor_id_is_inherited_by_one_user_only(client: TestClient, service: Headers) -> None:
    first = sign_up(client, service, "ada@example.com", visitor_id="vid-shared")
    assert first.status_code == 201, first.text
    second = sign_up(client, service, "grace@example.com", visitor_id="vid-shared")
    assert second.status_code == 422, second.text
    assert second.json()["error"]["code"] == "visitor_taken"


def test_a_user_may_belong_to_a_customer(
    client: TestClient, service: Headers, db: Database
) -> None:
    alone = sign_up(client, service, "ada@example.com").json()["person_id"]
    member = sign_up(client, service, "grace@example.com", customer_id="cust-0042")
    assert member.status_code == 201, member.text
    with db.reading() as session:
        assert session.get(Person, alone).customer_id is None
        assert session.get(Person, member.json()["person_id"]).customer_id == "cust-0042"


# --- Event batches --------------------------------------------------------------------------


def test_a_batch_holds_at_most_ten_thousand_events(
    client: TestClient,
    service: Headers,
    db: Database,
    *,
    keys: SqlKeyStore,
    clock: FixedClock,
    omni_compiled: CompiledPolicy,
) -> None:
    over = post_events(client, service, "batch-over", [event(visitor_id="vid-bulk")] * 10_001)
    assert over.status_code == 422
    assert over.json()["error"]["code"] == "invalid_request"
    assert stored_events(db) == 0

    full = post_events(
        client,
        service,
        "batch-full",
        [event(visitor_id=f"vid-{i % 50}", path=f"/p/{i}") for i in range(MAX_BATCH)],
    )
    assert full.status_code == 200, full.text
    assert full.json() == {"idempotency_key": "batch-full", "stored": MAX_BATCH, "duplicate": False}
    assert stored_events(db) == MAX_BATCH

    one = IncomingEvent(kind="page_view", time=clock.now(), visitor_id="vid-bulk")
    for size in (0, MAX_BATCH + 1):
        with db.writing() as session, pytest.raises(Unprocessable) as refused:
            record_events(
                session,
                keys,
                clock,
                omni_compiled,
                actor="test",
                batch_key=f"lib-{size}",
                events=[one] * size,
            )
        assert refused.value.code == "batch_size"


def test_a_retried_batch_is_stored_once(client: TestClient, service: Headers, db: Database) -> None:
    batch = [event(visitor_id="vid-retry", path="/a"), event(visitor_id="vid-retry", path="/b")]
    first = post_events(client, service, "retry-0001", batch)
    assert first.json() == {"idempotency_key": "retry-0001", "stored": 2, "duplicate": False}
    assert stored_events(db) == 2
    again = post_events(client, service, "retry-0001", batch)
    assert again.status_code == 200, again.text
    assert again.json() == {"idempotency_key": "retry-0001", "stored": 2, "duplicate": True}
    assert stored_events(db) == 2
    with db.reading() as session:
        assert session.scalar(select(func.count()).select_from(EventBatch)) == 1


@pytest.mark.parametrize(
    "changed",
    [
        {"path": "/b"},
        {"type": "click"},
        {"visitor_id": "vid-someone-else"},
        {"time": "2026-11-25T10:00:01Z"},
    ],
)
def test_an_idempotency_key_reused_for_different_events_is_refused(
    client: TestClient, service: Headers, db: Database, changed: dict[str, str]
) -> None:
    original = event(visitor_id="vid-key", path="/a")
    assert post_events(client, service, "reuse-0001", [original]).status_code == 200
    reused = post_events(client, service, "reuse-0001", [{**original, **changed}])
    assert reused.status_code == 409, reused.text
    assert reused.json()["error"]["code"] == "idempotency_key_reused"
    assert stored_events(db) == 1


@pytest.mark.clause("C12")
def test_the_user_agent_is_reduced_to_browser_and_device_type(
    client: TestClient, service: Headers, db: Database, make_key: Callable[[str], str]
) -> None:
    person = sign_up(client, service, "ada@example.com").json()["person_id"]
    response = post_events(
        client,
        service,
        "agent-0001",
        [
            event(person_id=person, user_agent=IPHONE_SAFARI, ip="192.0.2.7", path="/"),
            event(person_id=person, user_agent=DESKTOP_FIREFOX, path="/docs"),
        ],
    )
    assert response.status_code == 200, response.text
    read = use(client, service, person, "service_improvement", ["device.browser", "device.type"])
    assert read.status_code == 200, read.text
    values = read.json()["values"]
    assert sorted((v["field"], v["value"]) for v in values) == [
        ("device_type", "desktop"),
        ("device_type", "mobile"),
        ("user_agent_browser", "Firefox"),
        ("user_agent_browser", "Safari"),
    ]
    everything = use(
        client,
        bearer(make_key("security_fraud")),
        person,
        "fraud_and_legal",
        ["device.browser", "device.type", "network.ip", "usage.pages", "usage.time"],
    )
    assert everything.status_code == 200, everything.text
    fields = {v["field"] for v in everything.json()["values"]}
    assert fields == {"user_agent_browser", "device_type", "ip", "path", "time"}
    text = everything.text
    for fragment in ("Mozilla", "iPhone OS", "AppleWebKit", "Gecko", "Linux x86_64"):
        assert fragment not in text
    with db.reading() as session:
        for row in session.scalars(select(LogEvent)):
            assert b"Mozilla" not in row.sealed


def test_a_long_user_agent_is_parsed_from_its_first_256_characters_only(
    client: TestClient, service: Headers
) -> None:
    person = sign_up(client, service, "ada@example.com").json()["person_id"]
    # A real agent with 2 KB of extension tokens after it, different in every event: the
    # parse caches must see one key (the first 256 characters), not one 2 KB key per event.
    head = (IPHONE_SAFARI + f" Charter-test/{secrets.token_hex(4)} ").ljust(256, "x")
    agents = [(head + f" ({number:04d}) ").ljust(2048, "y") for number in range(50)]
    assert len(set(agents)) == len(agents)
    assert {len(agent) for agent in agents} == {2048}
    # The caches are private to the parser; counting their misses is how to see their keys.
    caches = (useragent._browser, useragent._device_type)
    before = [cache.cache_info().misses for cache in caches]

    response = post_events(
        client, service, "long-agents-0001", [event(person_id=person, user_agent=a) for a in agents]
    )

    assert response.status_code == 200, response.text
    after = [cache.cache_info().misses for cache in caches]
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1]
    read = use(client, service, person, "service_improvement", ["device.browser", "device.type"])
    assert read.status_code == 200, read.text
    stored = {(v["field"], v["value"]) for v in read.json()["values"]}
    assert stored == {("user_agent_browser", "Safari"), ("device_type", "mobile")}


@pytest.mark.clause("C26")
def test_events_for_an_erased_or_objecting_person_are_refused(
    client: TestClient,
    service: Headers,
    db: Database,
    clock: FixedClock,
    make_key: Callable[[str], str],
) -> None:
    erased = sign_up(client, service, "ada@example.com", visitor_id="vid-erased").json()[
        "person_id"
    ]
    objecting = sign_up(client, service, "grace@example.com", visitor_id="vid-objecting").json()[
        "person_id"
    ]
    deleted = client.delete(f"/v1/people/{erased}", headers=bearer(make_key("privacy_officer")))
    assert deleted.status_code == 200, deleted.text
    with db.writing() as session:
        get_person(session, objecting).objected_at = clock.now()

    for key, item in (
        ("gone-0001", event(person_id=erased)),
        ("gone-0002", event(person_id=objecting)),
        ("gone-0003", event(visitor_id="vid-objecting")),
    ):
        refused = post_events(client, service, key, [event(visitor_id="vid-fine"), item])
        assert refused.status_code == 409, refused.text
        assert refused.json()["error"]["code"] == "person_gone"
    assert stored_events(db) == 0

    unknown = post_events(client, service, "gone-0004", [event(person_id="0" * 32)])
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "person_not_found"


def test_library_record_events_matches_the_api(
    db: Database, keys: SqlKeyStore, clock: FixedClock, omni_compiled: CompiledPolicy
) -> None:
    batch = [
        IncomingEvent(
            kind="click",
            time=clock.now() - dt.timedelta(minutes=5),
            visitor_id="vid-lib",
            item="signup-cta",
            ip="198.51.100.4",
        )
    ]
    with db.writing() as session:
        first = record_events(
            session, keys, clock, omni_compiled, actor="test", batch_key="lib-0001", events=batch
        )
    with db.writing() as session:
        again = record_events(
            session, keys, clock, omni_compiled, actor="test", batch_key="lib-0001", events=batch
        )
    assert (first.stored, first.duplicate, again.stored, again.duplicate) == (1, False, 1, True)
    other = [
        IncomingEvent(
            kind="click",
            time=batch[0].time,
            visitor_id="vid-lib-2",
            item="signup-cta",
            ip="198.51.100.4",
        )
    ]
    with db.writing() as session, pytest.raises(Conflict) as reused:
        record_events(
            session, keys, clock, omni_compiled, actor="test", batch_key="lib-0001", events=other
        )
    assert reused.value.code == "idempotency_key_reused"
    assert stored_events(db) == 1


@pytest.mark.slow
def test_the_same_batch_sent_twice_at_once_is_stored_once_and_never_fails_badly(
    committed_db: Database, keys: SqlKeyStore, clock: FixedClock, omni_compiled: CompiledPolicy
) -> None:
    """A client that retries before its first attempt has committed: the second attempt
    waits, then is either acknowledged as a duplicate or told to retry (409), and a retry
    is acknowledged. The batch is stored once."""
    events = [
        IncomingEvent(kind="page_view", time=clock.now(), visitor_id="visitor-twice", path="/a")
        for _ in range(5)
    ]
    recorded, release = threading.Event(), threading.Event()
    outcomes: list[object] = []

    def store(*, hold: bool = False) -> object:
        with committed_db.writing() as session:
            stored = record_events(
                session,
                keys,
                clock,
                omni_compiled,
                actor="test",
                batch_key="batch-twice-0001",
                events=events,
            )
            if hold:  # keep the transaction open until the second attempt is under way
                recorded.set()
                release.wait(timeout=30)
            return stored

    def first() -> None:
        store(hold=True)

    def second() -> None:
        try:
            outcomes.append(store())
        except Conflict as refusal:
            outcomes.append(refusal.code)

    one = threading.Thread(target=first)
    one.start()
    assert recorded.wait(timeout=30)
    two = threading.Thread(target=second)
    two.start()
    # Give the second attempt time to reach the first one's uncommitted claim; the outcome
    # asserted below does not depend on whether it did.
    two.join(timeout=0.5)
    release.set()
    one.join()
    two.join()

    assert len(outcomes) == 1
    outcome = outcomes[0]
    if outcome == "idempotency_key_in_flight":
        outcome = store()
    assert getattr(outcome, "duplicate", None) is True
    with committed_db.reading() as session:
        stored = session.scalar(select(func.count()).select_from(LogEvent))
    assert stored == len(events)


@dataclass(frozen=True)
class PlannedClick:
    """The visitor `vid-plan`, who has one click stored and a second one planned: its
    people read and the click sealed, as a server does before it takes the write lock."""

    visitor: str
    store: Callable[[], None]


@pytest.fixture
def planned_click(
    *,
    client: TestClient,
    service: Headers,
    db: Database,
    keys: SqlKeyStore,
    clock: FixedClock,
    omni_compiled: CompiledPolicy,
) -> PlannedClick:
    first = post_events(client, service, "plan-0001", [event(visitor_id="vid-plan")])
    assert first.status_code == 200, first.text
    visitor = visitor_person(db, keys, "vid-plan")
    assert visitor is not None
    click = IncomingEvent(kind="click", time=clock.now(), visitor_id="vid-plan", item="cta")
    batch = prepare_batch(keys, clock, batch_key="plan-0002", events=[click])
    with db.reading() as session:
        plan = plan_batch(session, keys, clock, omni_compiled, batch)
    assert plan is not None

    def store() -> None:
        with db.writing() as session:
            store_batch(
                session, keys, clock, omni_compiled, actor="test", batch=batch, planned=plan
            )

    return PlannedClick(visitor, store)


def _events_by_owner(db: Database) -> set[tuple[str, str]]:
    with db.reading() as session:
        rows = session.execute(select(LogEvent.person_id, LogEvent.collection_point))
        return {(str(person), str(point)) for person, point in rows}


@pytest.mark.clause("C14")
def test_a_batch_planned_before_the_write_lock_follows_a_sign_up_made_meanwhile(
    client: TestClient, service: Headers, db: Database, planned_click: PlannedClick
) -> None:
    # Between the plan and the write, the visitor signs up: the click is the user's (C14).
    user = sign_up(client, service, "ada@example.com", visitor_id="vid-plan").json()["person_id"]
    planned_click.store()

    assert _events_by_owner(db) == {
        (planned_click.visitor, "log_data"),
        (user, "user_activity"),
    }
    seen = use(client, service, user, "service_improvement", ["usage.clicks"])
    assert seen.status_code == 200, seen.text
    assert [v["value"] for v in seen.json()["values"] if v["field"] == "item"] == ["cta"]


@pytest.mark.clause("C26")
def test_a_batch_planned_before_the_write_lock_is_refused_if_its_person_objected_meanwhile(
    db: Database, clock: FixedClock, planned_click: PlannedClick
) -> None:
    with db.writing() as session:
        get_person(session, planned_click.visitor).objected_at = clock.now()
    with pytest.raises(Conflict) as refused:
        planned_click.store()

    assert refused.value.code == "person_gone"
    assert stored_events(db) == 1


def test_a_batch_planned_before_the_write_lock_stores_nothing_for_a_person_erased_meanwhile(
    client: TestClient,
    db: Database,
    keys: SqlKeyStore,
    make_key: Callable[[str], str],
    planned_click: PlannedClick,
) -> None:
    erased = client.delete(
        f"/v1/people/{planned_click.visitor}", headers=bearer(make_key("privacy_officer"))
    )
    assert erased.status_code == 200, erased.text
    planned_click.store()

    # Erasure forgot the visitor id, so the click starts a new visitor: nothing is stored
    # under the erased person, and nothing under a key that was destroyed.
    newcomer = visitor_person(db, keys, "vid-plan")
    assert _events_by_owner(db) == {(str(newcomer), "log_data")}
    assert newcomer != planned_click.visitor
