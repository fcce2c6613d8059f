"""The one door to personal data: decide, record the decision, and only then decrypt.

Nothing else in Charter opens a sealed value. Every question (allowed or not) is written to
the audit log in the caller's transaction, so a refusal is recorded as surely as a use.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from charter.access.decide import Decision, PersonState, decide
from charter.audit.chain import Event, record
from charter.clock import Clock
from charter.consent.choices import current_choices
from charter.db import column_max, in_chunks, select_in, storable_time, utc_text
from charter.errors import Unprocessable
from charter.policy.compiled import CompiledPolicy
from charter.staff.service import Actor
from charter.vault.crypto import DamagedSealer, DecryptionFailed, Sealer
from charter.vault.events import UndecodablePayload, decode_payload
from charter.vault.keystore import KeyStore
from charter.vault.models import LogEvent, Person, Record
from charter.vault.people import household, owner_of
from charter.vault.sealing import event_ad, record_ad


@dataclass(frozen=True)
class Value:
    """One decrypted value, with where it came from."""

    category: str
    field: str
    collection_point: str
    value: str
    collected_at: str
    source: str
    source_name: str | None

    def as_json(self) -> dict[str, object]:
        return {
            "category": self.category,
            "field": self.field,
            "collection_point": self.collection_point,
            "value": self.value,
            "collected_at": self.collected_at,
            "source": self.source,
            "source_name": self.source_name,
        }


@dataclass(frozen=True)
class Use:
    decision: Decision
    values: tuple[Value, ...] = ()
    withheld: int = 0
    # Values that do not decrypt where they are stored: altered, copied from another row or
    # person, or left without a key. Never returned; counted and recorded in the audit log.
    unreadable: int = 0
    # The cursor of the next page, if there is one.
    next: str | None = None


def person_state(session: Session, person: Person) -> PersonState:
    """The state decide() needs about `person` (an owner: see `vault.people.owner_of`)."""
    return PersonState(
        erased=person.erased_at is not None,
        objected=person.objected_at is not None,
        choices=current_choices(session, person.id).current,
        kind=person.kind,
    )


def _audited_use(
    policy: CompiledPolicy, purpose: str, categories: Sequence[str]
) -> dict[str, object]:
    # Only the policy's own names go into the audit log: a name it does not know came from the
    # caller and could be anything, personal data included; it is counted, not copied.
    known = sorted({c for c in categories if c in policy.categories or c in policy.group_leaves})
    return {
        "purpose": purpose if purpose in policy.purpose_basis else None,
        "categories": known,
        "unknown_categories": len(set(categories)) - len(known),
    }


def ask(
    session: Session,
    clock: Clock,
    policy: CompiledPolicy,
    *,
    actor: Actor,
    person_id: str,
    purpose: str,
    categories: Sequence[str],
) -> Decision:
    """Decide a use without returning data, and record the decision."""
    decision, _ = _decide(
        session,
        clock,
        policy,
        actor=actor,
        person_id=person_id,
        purpose=purpose,
        categories=categories,
        action="access:decision:asked",
    )
    return decision


def _decide(
    session: Session,
    clock: Clock,
    policy: CompiledPolicy,
    *,
    actor: Actor,
    person_id: str,
    purpose: str,
    categories: Sequence[str],
    action: str,
) -> tuple[Decision, Person]:
    """Decide, and record the decision; also the person decided about: a visitor who signed
    up is decided as the user they became."""
    owner = owner_of(session, person_id)
    decision = decide(policy, actor.role, purpose, categories, person_state(session, owner))
    record(
        session,
        clock,
        Event(
            actor.ref,
            action,
            f"person:{owner.id}",
            outcome="allowed" if decision.allowed else "refused",
            details={**_audited_use(policy, purpose, categories), "code": decision.code},
        ),
    )
    return decision, owner


def use_personal_data(
    session: Session,
    keys: KeyStore,
    clock: Clock,
    policy: CompiledPolicy,
    *,
    actor: Actor,
    person_id: str,
    purpose: str,
    categories: Sequence[str],
    limit: int = 1000,
    after: str | None = None,
) -> Use:
    """Decide; if allowed, return the person's values in `categories`, decrypted: a page of
    at most `limit` stored rows (their records, then their events, newest first), from the
    cursor `after` (the `next` of the page before)."""
    position = Cursor.parse(after)
    decision, owner = _decide(
        session,
        clock,
        policy,
        actor=actor,
        person_id=person_id,
        purpose=purpose,
        categories=categories,
        action="access:personal_data:used",
    )
    if not decision.allowed:
        return Use(decision)
    members = household(session, owner.id)
    sealers = keys.sealers(members, create=False)
    wanted = policy.leaves_for(purpose, categories)
    page = _Page(sealers, limit)
    if position.phase == "records":
        records = (
            select(Record)
            .where(Record.person_id.in_(members), Record.category.in_(wanted))
            .order_by(Record.collected_at, Record.id)
            .limit(limit + 1)
        )
        if position.at is not None:
            records = records.where(
                or_(
                    Record.collected_at > position.at,
                    and_(Record.collected_at == position.at, Record.id > position.id),
                )
            )
        for row in session.scalars(records):
            if page.full():
                page.next = str(Cursor("records", page.last_id, page.last_at))
                break
            if _withheld_from(policy, actor, row):
                page.count(row.id, row.collected_at)
                page.withheld += 1  # e.g. job applications: recruiters only (C6)
                continue
            page.add_record(row)
        position = Cursor("events", None)
    log_fields = {name: cat for name, cat in policy.log_fields.items() if cat in wanted}
    if page.next is None and log_fields:
        events = (
            select(LogEvent)
            .where(LogEvent.person_id.in_(members))
            .order_by(LogEvent.id.desc())
            .limit(limit - page.rows + 1)
        )
        last = position.id if position.id is not None else _BEYOND_EVERY_ID
        for event in session.scalars(events.where(LogEvent.id < last)):
            if page.full():
                page.next = str(Cursor("events", last))
                break
            page.add_event(event, log_fields)
            last = event.id
    damaged = sorted(p for p, sealer in sealers.items() if isinstance(sealer, DamagedSealer))
    if damaged:
        record(
            session,
            clock,
            Event(
                actor.ref,
                "vault:data_key:damaged",
                f"person:{members[0]}",
                outcome="failed",
                details={"keys": len(damaged)},
            ),
        )
    if page.unreadable:
        record(
            session,
            clock,
            Event(
                actor.ref,
                "access:sealed_value:rejected",
                f"person:{members[0]}",
                outcome="failed",
                details={"unreadable": page.unreadable},
            ),
        )
    return Use(decision, tuple(page.values), page.withheld, page.unreadable, page.next)


@dataclass(frozen=True)
class Delivery:
    """The values a disclosure delivers to its recipient, by person (the owner)."""

    values: dict[str, tuple[Value, ...]]
    # Values that do not decrypt where they are stored: never delivered, counted.
    unreadable: int = 0
    # Values of a collection point the requester's role may not read (C6): not delivered.
    withheld: int = 0


def deliver_disclosed(
    session: Session,
    keys: KeyStore,
    clock: Clock,
    policy: CompiledPolicy,
    *,
    actor: Actor,
    disclosure_id: int,
    owners: Sequence[str],
    categories: Iterable[str],
    action: str = "access:personal_data:disclosed",
) -> Delivery:
    """The stored values in `categories` (leaf categories) of `owners`, decrypted for the
    disclosure `disclosure_id`, which the ledger has recorded for exactly these people
    (`disclosures.ledger` decided each of them): for its recipient, or (`action`
    `access:contact:notified`) to tell the people about it. One audit entry, in the
    caller's transaction, counts what was opened; it names no value."""
    connection = session.connection()
    owner_of_member = {owner: owner for owner in owners}
    merged = "SELECT id, merged_into FROM people WHERE merged_into IN ({marks})"
    for member, owner in select_in(connection, merged, list(owners)):
        owner_of_member[member] = owner
    sealers = keys.sealers(owner_of_member, create=False)
    page = _Page(sealers, limit=2**62)
    by_owner: dict[str, list[Value]] = {owner: [] for owner in owners}
    wanted = sorted(set(categories))
    for members in in_chunks(list(owner_of_member)):
        rows = session.scalars(
            select(Record)
            .where(Record.person_id.in_(members), Record.category.in_(wanted))
            .order_by(Record.person_id, Record.collected_at, Record.id)
        )
        for row in rows:
            if _withheld_from(policy, actor, row):
                page.withheld += 1
                continue
            before = len(page.values)
            page.add_record(row)
            if len(page.values) > before:
                by_owner[owner_of_member[row.person_id]].append(page.values[-1])
    delivery = Delivery(
        {owner: tuple(values) for owner, values in by_owner.items()},
        page.unreadable,
        page.withheld,
    )
    record(
        session,
        clock,
        Event(
            actor.ref,
            action,
            f"disclosure:{disclosure_id}",
            outcome="allowed",
            details={
                "people": len(owners),
                "values": len(page.values),
                "withheld": page.withheld,
                "unreadable": page.unreadable,
            },
        ),
    )
    return delivery


# Events are paged newest first, below the last id seen; the first page starts above them all.
_BEYOND_EVERY_ID = column_max(LogEvent, "id")
# The ids a cursor may name in each phase: what the column holds, so that a cursor beyond it
# is refused, not overflowed in the driver.
_LAST_ID = {"records": column_max(Record, "id"), "events": _BEYOND_EVERY_ID}


@dataclass(frozen=True)
class Cursor:
    """Where a page of a use ends: the rows of one phase (records in the order they were
    collected, then events newest first) after the row `id` (collected `at`, for records)."""

    phase: str
    id: int | None
    at: dt.datetime | None = None

    def __str__(self) -> str:
        if self.at is None:
            return f"{self.phase}~{self.id}"
        return f"{self.phase}~{self.id}~{utc_text(self.at)}"

    @classmethod
    def parse(cls, text: str | None) -> Cursor:
        """The cursor of a `next`; refused (`invalid_cursor`) unless it is one this use could
        have answered: an id the phase's column holds and, for records, a time it stores."""
        if text is None:
            return cls("records", None)
        parts = text.split("~")
        try:
            phase, position = parts[0], int(parts[1])
            at = dt.datetime.fromisoformat(parts[2]) if phase == "records" else None
            if phase not in _LAST_ID or len(parts) != (3 if at else 2):
                raise ValueError(text)
            if not 0 <= position <= _LAST_ID[phase] or (at is not None and not storable_time(at)):
                raise ValueError(text)
        except (ValueError, IndexError, OverflowError):
            raise Unprocessable(
                "not a cursor of this use: give the `next` it answered", code="invalid_cursor"
            ) from None
        return cls(phase, position, at)


class _Page:
    """The values of one page of a use, as rows are opened."""

    def __init__(self, sealers: Mapping[str, Sealer], limit: int) -> None:
        self._sealers = sealers
        self._limit = limit
        self.values: list[Value] = []
        self.rows = 0
        self.last_id = 0
        self.last_at: dt.datetime | None = None
        self.withheld = 0
        self.unreadable = 0
        self.next: str | None = None

    def full(self) -> bool:
        return self.rows >= self._limit

    def count(self, row_id: int, at: dt.datetime | None = None) -> None:
        self.rows += 1
        self.last_id, self.last_at = row_id, at

    def add_record(self, row: Record) -> None:
        self.count(row.id, row.collected_at)
        opened = _opened(self._sealers.get(row.person_id), row.sealed, record_ad(row))
        try:
            plain = opened.decode() if opened is not None else None
        except UnicodeDecodeError:
            plain = None
        if plain is None:
            self.unreadable += 1
            return
        self.values.append(
            Value(
                row.category,
                row.field,
                row.collection_point,
                plain,
                row.collected_at.isoformat(),
                row.source,
                row.source_name,
            )
        )

    def add_event(self, event: LogEvent, log_fields: Mapping[str, str]) -> None:
        self.count(event.id)
        associated = event_ad(event.uid, event.person_id, event.kind, event.collection_point)
        opened = _opened(self._sealers.get(event.person_id), event.sealed, associated)
        try:
            payload = decode_payload(opened) if opened is not None else None
        except UndecodablePayload:
            payload = None
        if payload is None:
            self.unreadable += 1
            return
        for name, category in log_fields.items():
            if name in payload:
                self.values.append(
                    Value(
                        category,
                        name,
                        event.collection_point,
                        str(payload[name]),
                        event.collected_at.isoformat(),
                        "automatic",
                        None,
                    )
                )


def _withheld_from(policy: CompiledPolicy, actor: Actor, row: Record) -> bool:
    """Whether the record's collection point keeps it from `actor`'s role (C6)."""
    point = policy.collection_points.get(row.collection_point)
    return (
        point is not None
        and point.readable_by_roles is not None
        and actor.role not in point.readable_by_roles
    )


def _opened(sealer: Sealer | None, sealed: bytes, associated: bytes) -> bytes | None:
    """The plaintext, or None if the value does not decrypt here."""
    if sealer is None:
        return None
    try:
        return sealer.open(sealed, associated)
    except DecryptionFailed:
        return None
