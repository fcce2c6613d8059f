"""Log data (C10, C12, C14): batches of automatic events, sealed, stored once, durable.

This is the hot path of ingest, so rows go in through the driver's executemany with their
values already in stored form, and every event of a person is sealed under a cached key.

`record_events` does it all in the caller's transaction. A server runs `ingest_batch`,
which splits it in three so that little happens while it holds the database's write lock:
`prepare_batch` (no database), `plan_batch` (a read-only session: find the people, seal
the events), then `store_batch` (the write: check that those people did not change
meanwhile, then insert).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Literal, Protocol

import orjson
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from charter.audit.chain import Event, record
from charter.clock import Clock
from charter.consent.choices import record_gpc
from charter.db import Database, bulk_insert, select_in, utc_text
from charter.errors import Conflict, NotFound, Unprocessable
from charter.policy.compiled import CompiledPolicy
from charter.vault.crypto import fresh_nonces
from charter.vault.identifiers import BlindIndex, new_record_ids
from charter.vault.keystore import KeyStore, sealers_to_write
from charter.vault.models import EventBatch
from charter.vault.people import locking_people, new_visitors
from charter.vault.sealing import event_ad_of, event_prefix
from charter.vault.useragent import browser_of, device_type_of

MAX_BATCH = 10_000
# The times an event may carry: none before Charter's oldest data could be, none more than a
# day ahead of the clock (a client's clock a little fast is forgiven).
EARLIEST = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
LATEST_AHEAD = dt.timedelta(days=1)
EVENT_COLUMNS = (
    "uid",
    "person_id",
    "kind",
    "collection_point",
    "policy_version",
    "collected_at",
    "sealed",
)


class EventLike(Protocol):
    """What `record_events` reads of an event: `IncomingEvent`, or a parsed request body."""

    @property
    def kind(self) -> Literal["page_view", "click"]: ...
    @property
    def time(self) -> dt.datetime: ...
    @property
    def visitor_id(self) -> str | None: ...
    @property
    def person_id(self) -> str | None: ...
    @property
    def ip(self) -> str | None: ...
    @property
    def user_agent(self) -> str | None: ...
    @property
    def path(self) -> str | None: ...
    @property
    def item(self) -> str | None: ...
    @property
    def location(self) -> str | None: ...
    @property
    def connection(self) -> str | None: ...
    @property
    def gpc(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class IncomingEvent:
    """One event as a service reports it. The User-Agent is reduced to browser and device."""

    kind: Literal["page_view", "click"]
    time: dt.datetime
    visitor_id: str | None = None
    person_id: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    path: str | None = None
    item: str | None = None
    location: str | None = None
    connection: str | None = None
    # The person's browser sent Global Privacy Control (Sec-GPC: 1) with this event.
    gpc: bool = False


@dataclass(frozen=True)
class BatchReceipt:
    key: str
    stored: int
    duplicate: bool


# The sealed payload is a JSON list in this order; absent fields are null.
PAYLOAD_FIELDS = (
    "time",
    "ip",
    "user_agent_browser",
    "device_type",
    "path",
    "item",
    "location",
    "connection",
)
# The time is kept in microseconds since the epoch (UTC): cheaper to write than ISO text.
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)


def _payload(event: EventLike) -> bytes:
    agent = event.user_agent
    return orjson.dumps(
        [
            (event.time - _EPOCH) // _MICROSECOND,
            event.ip or None,
            browser_of(agent) if agent else None,
            device_type_of(agent) if agent else None,
            event.path or None,
            event.item or None,
            event.location or None,
            event.connection or None,
        ]
    )


class UndecodablePayload(ValueError):
    """An opened payload that is not what Charter seals (a time out of range included)."""


def decode_payload(opened: bytes) -> dict[str, str]:
    """The fields of an opened event payload, by name (absent fields left out)."""
    try:
        values = orjson.loads(opened)
        values[0] = (_EPOCH + values[0] * _MICROSECOND).isoformat()
        pairs = zip(PAYLOAD_FIELDS, values, strict=True)
        return {name: value for name, value in pairs if value is not None}
    except (ValueError, TypeError, OverflowError, IndexError, KeyError):
        raise UndecodablePayload("the event's payload does not decode") from None


def _people(session: Session, clock: Clock, batch: PreparedBatch) -> tuple[list[str], list[str]]:
    """Each event's person id, and the collection point it belongs to; visitors never seen
    before become people. The people's rows stay locked until the batch commits (see
    `_person_rows`)."""
    by_visitor, people = _known_visitors(session, batch.visitor_indexes, lock=True)
    new = new_visitors(
        session, clock, {d: v for d, v in batch.visitor_indexes.items() if v not in by_visitor}
    )
    by_visitor.update(new)
    people.update({pid: _Who("visitor", False, None) for pid in new.values()})
    _read_people(session, batch, people, lock=True)
    return _assign(batch.events, by_visitor, people)


def _read_people(
    session: Session, batch: PreparedBatch, people: dict[str, _Who], *, lock: bool
) -> None:
    """Add to `people` the persons the events name, and the users visitors were merged into."""
    named = {e.person_id for e in batch.events if e.person_id is not None}
    people.update(_person_rows(session, named - set(people), lock=lock))
    unknown = sorted(named - set(people))
    if unknown:
        raise NotFound(
            f"{len(unknown)} event(s) name a person who does not exist", code="person_not_found"
        )
    # A visitor merged into a user at sign-up: their events are the user's now (C14), and
    # stop with the user's erasure or objection.
    merged_into = {r.merged_into for r in people.values() if r.merged_into} - set(people)
    people.update(_person_rows(session, merged_into, lock=lock))


def _assign(
    events: Sequence[EventLike], by_visitor: Mapping[str, str], people: Mapping[str, _Who]
) -> tuple[list[str], list[str]]:
    owners = {pid: row.merged_into or pid for pid, row in people.items()}
    gone = {pid for pid, owner in owners.items() if people[owner].gone}
    if gone:
        raise Conflict(
            f"{len(gone)} person(s) named in the batch were erased or objected", code="person_gone"
        )
    # Log data is of visitors and users (C10, C14); a job applicant, kept apart (C6), or a
    # correspondent has none.
    apart = {pid for pid, owner in owners.items() if people[owner].kind not in _LOGGED_KINDS}
    if apart:
        raise Unprocessable(
            f"{len(apart)} person(s) named in the batch are not visitors or users, whose log "
            "data the policy declares",
            code="subject_not_covered",
        )
    resolved = {
        pid: (owner, "user_activity" if people[owner].kind == "user" else "log_data")
        for pid, owner in owners.items()
    }
    pairs = [
        resolved[e.person_id if e.person_id is not None else by_visitor[e.visitor_id or ""]]
        for e in events
    ]
    person_ids = [owner for owner, _ in pairs]
    points = [point for _, point in pairs]
    return person_ids, points


_LOGGED_KINDS = frozenset({"visitor", "user"})


@dataclass(frozen=True, slots=True)
class _Who:
    kind: str
    gone: bool
    merged_into: str | None

    @classmethod
    def of(cls, kind: str, gone: object, merged_into: str | None) -> _Who:
        return cls(kind, bool(gone), merged_into)


# Through the driver, a whole batch at a time (`select_in`): these run for every batch.
_PERSON_COLUMNS = (
    "p.id, p.kind, (p.erased_at IS NOT NULL OR p.objected_at IS NOT NULL), p.merged_into"
)
_KNOWN_VISITORS = (
    f'SELECT v."index", {_PERSON_COLUMNS} FROM visitor_ids v '  # noqa: S608 - no input in it
    'JOIN people p ON p.id = v.person_id WHERE v."index" IN ({marks})'
)
_PEOPLE_BY_ID = f"SELECT {_PERSON_COLUMNS} FROM people p WHERE p.id IN ({{marks}})"  # noqa: S608


def _known_visitors(
    session: Session, by_index: Mapping[str, str], *, lock: bool = False
) -> tuple[dict[str, str], dict[str, _Who]]:
    """Visitor id -> person id for the visitors seen before, and those people, in one query."""
    by_visitor: dict[str, str] = {}
    rows: dict[str, _Who] = {}
    sql = locking_people(session, _KNOWN_VISITORS, lock=lock)
    for digest, person_id, kind, gone, merged_into in select_in(
        session.connection(), sql, by_index
    ):
        by_visitor[by_index[digest]] = person_id
        rows[person_id] = _Who.of(kind, gone, merged_into)
    return by_visitor, rows


def _person_rows(session: Session, person_ids: set[str], *, lock: bool) -> dict[str, _Who]:
    sql = locking_people(session, _PEOPLE_BY_ID, lock=lock)
    return {
        person_id: _Who.of(kind, gone, merged_into)
        for person_id, kind, gone, merged_into in select_in(session.connection(), sql, person_ids)
    }


_GPC_MARK = "\x1fgpc"


def _batch_content(events: Sequence[EventLike], payloads: Sequence[bytes]) -> bytes:
    """What makes two batches the same: each event's kind, whose it is, and its stored fields.

    Two lists in the same order; payloads are JSON, which never holds a raw \\x1e.
    """
    # A GPC signal adds a mark; a batch without any digests as it always did.
    who = "\x1e".join(
        [
            f"{e.kind}\x1f{e.visitor_id or ''}\x1f{e.person_id or ''}{_GPC_MARK if e.gpc else ''}"
            for e in events
        ]
    )
    return who.encode() + b"\x1d" + b"\x1e".join(payloads)


@dataclass(frozen=True)
class PreparedBatch:
    """A batch made ready to store: what needs no database is done, so that a server can do
    it before it waits for the write lock."""

    key: str
    events: Sequence[EventLike]
    payloads: list[bytes]
    # A keyed digest of the whole batch: it tells a retry from a different batch.
    digest: str
    # Blind index -> visitor id, for the events that name a visitor and no person.
    visitor_indexes: dict[str, str]


def prepare_batch(
    keys: KeyStore, clock: Clock, *, batch_key: str, events: Sequence[EventLike]
) -> PreparedBatch:
    """Check a batch's size, its times, and that each event names someone; reduce and
    encode its events."""
    if not 0 < len(events) <= MAX_BATCH:
        raise Unprocessable(f"a batch holds 1 to {MAX_BATCH} events", code="batch_size")
    latest = clock.now() + LATEST_AHEAD
    outside = sum(1 for e in events if not EARLIEST <= e.time <= latest)
    if outside:
        # A time far off would be stored, and fail every later read of the person's events.
        raise Unprocessable(
            f"{outside} event(s) have a time before {EARLIEST.year} or more than a day ahead",
            code="time_out_of_range",
        )
    if any(e.person_id is None and not e.visitor_id for e in events):
        raise Unprocessable("every event needs a visitor_id or a person_id", code="person_required")
    payloads = [_payload(e) for e in events]
    index = BlindIndex(keys.index_key())
    visitor_ids = {e.visitor_id for e in events if e.person_id is None and e.visitor_id}
    return PreparedBatch(
        batch_key,
        events,
        payloads,
        index.batch(_batch_content(events, payloads)),
        {index.visitor(v): v for v in visitor_ids},
    )


def record_events(
    session: Session,
    keys: KeyStore,
    clock: Clock,
    policy: CompiledPolicy,
    *,
    actor: str,
    batch_key: str,
    events: Sequence[EventLike],
) -> BatchReceipt:
    """Store a batch once: a retried batch (same key, same events) is acknowledged, not
    stored again; the same key with other events is refused."""
    batch = prepare_batch(keys, clock, batch_key=batch_key, events=events)
    return store_batch(session, keys, clock, policy, actor=actor, batch=batch)


Row = tuple[int, str, str, str, str, str, bytes]


def _sealed_rows(
    keys: KeyStore,
    policy: CompiledPolicy,
    batch: PreparedBatch,
    *,
    person_ids: list[str],
    points: list[str],
    at: str,
) -> list[Row]:
    """The batch's rows, each event sealed under the key of the person it belongs to."""
    sealers = sealers_to_write(keys, person_ids)
    version = policy.version
    uids = new_record_ids(len(batch.events))
    nonces = fresh_nonces(len(batch.events))
    prefixes: dict[tuple[str, str, str], bytes] = {}
    rows = [
        (
            uid,
            pid,
            event.kind,
            point,
            version,
            at,
            sealers[pid].seal(
                payload, event_ad_of(_prefix(prefixes, pid, event.kind, point), uid), nonce
            ),
        )
        for uid, pid, point, event, payload, nonce in zip(
            uids, person_ids, points, batch.events, batch.payloads, nonces, strict=True
        )
    ]
    # Grouped by person, each person's index entries go in together instead of all over the
    # index; the table itself is appended to in id order either way.
    rows.sort(key=itemgetter(1))
    return rows


def _prefix(known: dict[tuple[str, str, str], bytes], pid: str, kind: str, point: str) -> bytes:
    """The binding of a person's events of one kind and point, made once per batch."""
    found = known.get((pid, kind, point))
    if found is None:
        found = known[(pid, kind, point)] = event_prefix(pid, kind, point)
    return found


@dataclass(frozen=True)
class PlannedBatch:
    """A batch whose people were read, and whose events were sealed, before the write lock
    was taken. `store_batch` stores these rows only if it finds those people unchanged."""

    people: dict[str, _Who]
    rows: list[Row]
    received_at: dt.datetime
    # The owners of the events that carried a GPC signal.
    gpc_people: list[str]


def plan_batch(
    session: Session, keys: KeyStore, clock: Clock, policy: CompiledPolicy, batch: PreparedBatch
) -> PlannedBatch | None:
    """Find the batch's people and seal its events in a read-only session, so that a server
    does this work while another request holds the write lock. None if a visitor is new:
    new people are made under the write lock."""
    by_visitor, people = _known_visitors(session, batch.visitor_indexes)
    if len(by_visitor) < len(batch.visitor_indexes):
        return None
    _read_people(session, batch, people, lock=False)
    person_ids, points = _assign(batch.events, by_visitor, people)
    now = clock.now()
    return PlannedBatch(
        people,
        _sealed_rows(keys, policy, batch, person_ids=person_ids, points=points, at=utc_text(now)),
        now,
        _gpc_people(batch, person_ids),
    )


def _gpc_people(batch: PreparedBatch, person_ids: list[str]) -> list[str]:
    return [pid for pid, event in zip(person_ids, batch.events, strict=True) if event.gpc]


def ingest_batch(
    db: Database,
    keys: KeyStore,
    clock: Clock,
    policy: CompiledPolicy,
    *,
    actor: str,
    batch_key: str,
    events: Sequence[EventLike],
) -> BatchReceipt:
    """`record_events` as a server runs it, in units of work of its own: most of the work
    is done before the write lock is taken (the events encoded, their people read, the
    events sealed), so that meanwhile another request's batch can be written; under the
    lock the batch is stored if those people did not change. Durable when it returns."""
    batch = prepare_batch(keys, clock, batch_key=batch_key, events=events)
    with db.reading() as session:
        planned = plan_batch(session, keys, clock, policy, batch)
    with db.writing() as session:
        return store_batch(session, keys, clock, policy, actor=actor, batch=batch, planned=planned)


def _unchanged(session: Session, planned: PlannedBatch) -> bool:
    """Whether the plan's people are as it read them; their rows stay locked till commit."""
    return _person_rows(session, set(planned.people), lock=True) == planned.people


def store_batch(
    session: Session,
    keys: KeyStore,
    clock: Clock,
    policy: CompiledPolicy,
    *,
    actor: str,
    batch: PreparedBatch,
    planned: PlannedBatch | None = None,
) -> BatchReceipt:
    """`record_events` for a batch already prepared (`prepare_batch`), and perhaps planned
    (`plan_batch`): the plan's rows are stored if none of its people changed since (an
    erasure, an objection, a sign-up that took a visitor's history); else the batch's
    people are found again in this transaction."""
    batch_key, events, digest = batch.key, batch.events, batch.digest
    earlier = session.get(EventBatch, batch_key)
    if earlier is not None:
        if earlier.digest != digest:
            raise Conflict(
                "this idempotency key was used for a different batch", code="idempotency_key_reused"
            )
        return BatchReceipt(batch_key, earlier.count, duplicate=True)
    now = planned.received_at if planned is not None else clock.now()
    try:
        # Claim the key first, in a savepoint: a second request storing the same batch at
        # the same moment (PostgreSQL runs them side by side) gets a clear 409 to retry,
        # and its retry is then acknowledged as the duplicate it is.
        with session.begin_nested():
            session.add(
                EventBatch(key=batch_key, digest=digest, count=len(events), received_at=now)
            )
    except IntegrityError:
        raise Conflict(
            "another request is storing a batch under this idempotency key; retry it",
            code="idempotency_key_in_flight",
        ) from None
    if planned is not None and _unchanged(session, planned):
        rows, gpc_people = planned.rows, planned.gpc_people
    else:
        person_ids, points = _people(session, clock, batch)
        at = utc_text(now)
        rows = _sealed_rows(keys, policy, batch, person_ids=person_ids, points=points, at=at)
        gpc_people = _gpc_people(batch, person_ids)
    bulk_insert(session.connection(), "events", EVENT_COLUMNS, rows)
    record_gpc(session, clock, policy, actor=actor, person_ids=gpc_people)
    record(
        session,
        clock,
        Event(
            actor,
            "vault:events:recorded",
            f"batch:{digest[:16]}",
            details={"events": len(rows), "people": len({row[1] for row in rows})},
        ),
    )
    return BatchReceipt(batch_key, len(rows), duplicate=False)
