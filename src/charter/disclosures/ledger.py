"""Recording disclosures: each request guarded once, each person decided, one ledger row per
person disclosed, all in one transaction with its audit entry (C21, C22, C24).

A refused request records no ledger row; its refusal is audited in the same transaction,
which the caller commits like any other (the answer says it was refused). A retry with the
same idempotency key gets the first answer back and records nothing again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Select, func, or_, select, update
from sqlalchemy.orm import Session

from charter.access.decide import PersonState
from charter.access.use import Value, deliver_disclosed
from charter.audit.chain import Event, record
from charter.clock import Clock
from charter.db import bulk_insert, conflict_insert, in_chunks, select_in, table_of
from charter.disclosures.guards import (
    DisclosureDecision,
    DisclosureGuard,
    DisclosureRequest,
    StaffInRole,
    guard_disclosure,
)
from charter.disclosures.models import (
    DisclosedPerson,
    Disclosure,
    DisclosureExclusion,
    Selection,
)
from charter.disclosures.selections import open_selection, selected_people, use_up
from charter.errors import Conflict, Unprocessable
from charter.policy.compiled import CompiledPolicy
from charter.staff.models import StaffMember
from charter.staff.service import Actor
from charter.vault.keystore import KeyStore
from charter.vault.models import Person
from charter.vault.people import locking_people, owner_of

# What a disclosure does with the people allowed: `record` records them; `deliver` also
# returns their values, decrypted through the `access` door.
MODES = ("record", "deliver")
# The most people a delivery names: their values travel in one answer.
MAX_DELIVERED = 1000
# The code of a person id that names nobody Charter knows.
PERSON_NOT_FOUND = "person_not_found"
# The exclusions an answer lists; the counts cover them all, and the ledger keeps them all.
EXCLUSIONS_SHOWN = 1000
# People decided and written at a time: the memory of a disclosure of a million people
# stays that of one chunk, and the driver's executemany stays fast.
_CHUNK = 10_000

_DISCLOSURES = table_of(Disclosure)
_EXCLUSIONS = table_of(DisclosureExclusion)
_LEDGER_COLUMNS = ("disclosure_id", "person_id", "shine_the_light")
_EXCLUSION_COLUMNS = ("disclosure_id", "position", "person_id", "code")
_STANDING = (
    "SELECT p.id, p.merged_into, p.erased_at, p.objected_at, p.kind FROM people p "
    "WHERE p.id IN ({marks})"
)
_CHOICES = "SELECT person_id, topic, granted FROM choices WHERE person_id IN ({marks})"


class DisclosureRefused(Unprocessable):
    """The policy refuses the disclosure as a whole; `code` is the guard's."""


@dataclass(frozen=True)
class DeliveredPerson:
    """One person's values, as a delivery hands them to the recipient."""

    person_id: str
    values: tuple[Value, ...]


@dataclass(frozen=True)
class RecordedDisclosure:
    """The answer to a disclosure request: what was recorded, who was left out and why; or
    the policy's refusal of the whole request (`refusal`, audited, nothing recorded)."""

    id: int | None
    requested: int
    disclosed: int
    excluded: int
    # How many people were left out for each reason.
    codes: dict[str, int]
    # (person id, reason code) for the first `EXCLUSIONS_SHOWN` people left out, in the
    # order they were asked for; `exclusions_page` reads them all.
    exclusions: tuple[tuple[str, str], ...]
    # Whether this is the answer to an earlier request with the same idempotency key.
    replayed: bool = False
    refusal: DisclosureDecision | None = None
    # `deliver`: the values of each person disclosed, and how many did not decrypt.
    delivered: tuple[DeliveredPerson, ...] = ()
    unreadable: int = 0

    def raise_if_refused(self) -> None:
        """Raise the refusal as `DisclosureRefused`, once its audit entry is committed."""
        if self.refusal is not None:
            raise DisclosureRefused(self.refusal.reason, code=self.refusal.code)


def requester_of(actor: Actor) -> StaffInRole:
    """The requester of a disclosure made with `actor`'s key."""
    return StaffInRole(actor.staff_id, actor.role)


@dataclass(frozen=True)
class _People:
    """Whom a disclosure names: ids listed in the request, or a stored selection."""

    listed: tuple[str, ...]
    selection: str | None
    count: int

    def chunks(self, session: Session) -> Iterator[list[str]]:
        if self.selection is None:
            yield from in_chunks(self.listed, _CHUNK)
        else:
            yield from selected_people(session, self.selection, page=_CHUNK)

    def digested(self) -> list[object]:
        if self.selection is None:
            return list(self.listed)
        return ["selection", self.selection, self.count]


def record_disclosure(
    session: Session,
    clock: Clock,
    policy: CompiledPolicy,
    *,
    actor: Actor,
    request: DisclosureRequest,
    idempotency_key: str,
    people: Sequence[str] = (),
    selection: str | None = None,
    approver: str | None = None,
    mode: str = "record",
    keys: KeyStore | None = None,
) -> RecordedDisclosure:
    """Guard `request` once, decide each person (`people`, or the stored `selection` of
    `actor`'s, which this uses up), and record one ledger row for each person allowed, with
    one audit entry for the disclosure, in the session's transaction.

    `approver` is the handle of the staff member who approved it (for law enforcement and
    government), in place of `request.approver`. A refusal of the request as a whole is
    audited and answered (`RecordedDisclosure.refusal`; `raise_if_refused` once committed).
    A person id that names nobody is left out as `person_not_found`. The same
    `idempotency_key` sent again with the same request returns the first answer and records
    nothing; with another request it is refused (`idempotency_key_reused`). `deliver` (with
    the `keys` that open the values) also returns the values of the people disclosed, of at
    most `MAX_DELIVERED` people; a retry delivers them again."""
    if mode not in MODES:
        raise Unprocessable(
            f"the mode '{mode}' is not supported; use one of: {', '.join(MODES)}",
            code="unsupported_mode",
        )
    if request.requester != requester_of(actor):
        raise ValueError("the requester of a disclosure is the actor who makes it")
    if mode == "deliver" and keys is None:
        raise ValueError("a delivery needs the key store that opens the values")
    if approver is not None:
        request = dataclasses.replace(request, approver=_approver(session, approver))
    whom = _whom(session, actor, people, selection)
    if mode == "deliver" and whom.count > MAX_DELIVERED:
        raise Unprocessable(
            f"a delivery names at most {MAX_DELIVERED:,} people; record larger disclosures "
            "and deliver in parts",
            code="delivery_too_large",
        )
    digest = _digest(request, whom, mode)
    earlier = _earlier_answer(session, idempotency_key, digest)
    if earlier is not None:
        return _delivered(session, clock, policy, earlier, actor=actor, keys=keys, mode=mode)
    guard = guard_disclosure(policy, request)
    if not guard.decision.allowed:
        return _refused(session, clock, policy, actor=actor, guard=guard, requested=whom.count)
    chosen = _claimed(session, actor, whom)
    tally = _Tally()
    chunks = whom.chunks(session)
    tally.decide(session, guard, next(chunks, []))
    # The counts are final here unless more chunks follow (a selection of many people).
    disclosure_id = _insert_disclosure(
        session,
        clock,
        policy,
        guard,
        actor=actor,
        key=idempotency_key,
        digest=digest,
        mode=mode,
        counts=tally.counts(whom),
    )
    if disclosure_id is None:
        # Another request with this key was recorded since we looked (on PostgreSQL, the
        # insert waited for it to commit): its answer is the answer.
        earlier = _earlier_answer(session, idempotency_key, digest)
        if earlier is None:  # pragma: no cover - the conflicting row exists
            raise Conflict("the disclosure could not be recorded", code="conflict")
        return _delivered(session, clock, policy, earlier, actor=actor, keys=keys, mode=mode)
    tally.write(session, disclosure_id)
    chunked = False
    for chunk in chunks:
        chunked = True
        tally.decide(session, guard, chunk)
        tally.write(session, disclosure_id)
    if chosen is not None:
        use_up(session, chosen, disclosure_id)
    if chunked:
        session.execute(
            update(_DISCLOSURES)
            .where(_DISCLOSURES.c.id == disclosure_id)
            .values(**tally.counts(whom))
        )
    codes = tally.codes()
    answer = RecordedDisclosure(
        disclosure_id,
        whom.count,
        len(tally.disclosed),
        tally.excluded,
        codes,
        tuple(tally.shown),
    )
    record(
        session,
        clock,
        Event(
            actor.ref,
            "disclosures:disclosure:recorded",
            f"disclosure:{disclosure_id}",
            outcome="allowed",
            details={
                **_audited_request(policy, guard),
                "mode": mode,
                "requested": answer.requested,
                "disclosed": answer.disclosed,
                "excluded": answer.excluded,
                "codes": codes,
                "shine_the_light": guard.decision.shine_the_light,
                "selection": whom.selection is not None,
            },
        ),
    )
    return _delivered(
        session, clock, policy, answer, actor=actor, keys=keys, mode=mode, disclosed=tally.disclosed
    )


class _Tally:
    """The people of one disclosure as they are decided, a chunk at a time; each chunk's
    rows are written once the disclosure has its id."""

    def __init__(self) -> None:
        # Owner -> whether it is for the Shine the Light report, in the order decided.
        self.disclosed: dict[str, bool] = {}
        self.excluded = 0
        self.shown: list[tuple[str, str]] = []
        self._codes: Counter[str] = Counter()
        self._allowed: list[tuple[str, bool]] = []
        self._left_out: list[tuple[int, str, str]] = []

    def decide(self, session: Session, guard: DisclosureGuard, chunk: list[str]) -> None:
        """Decide each person of `chunk`; their rows wait for `write`."""
        states, owners = person_states(session, chunk)
        for person_id in chunk:
            owner = owners.get(person_id)
            if owner is None:
                code = PERSON_NOT_FOUND
            else:
                decision = guard.decide(states[owner])
                if decision.allowed:
                    if owner not in self.disclosed:
                        self.disclosed[owner] = decision.shine_the_light
                        self._allowed.append((owner, decision.shine_the_light))
                    continue
                code = decision.code
            self._left_out.append((self.excluded, person_id, code))
            if self.excluded < EXCLUSIONS_SHOWN:
                self.shown.append((person_id, code))
            self.excluded += 1
            self._codes[code] += 1

    def write(self, session: Session, disclosure_id: int) -> None:
        """Write the ledger and exclusion rows of the people decided since the last write."""
        connection = session.connection()
        allowed = [(disclosure_id, owner, flag) for owner, flag in self._allowed]
        left_out = [(disclosure_id, *row) for row in self._left_out]
        bulk_insert(connection, "disclosed_people", _LEDGER_COLUMNS, allowed)
        bulk_insert(connection, "disclosure_exclusions", _EXCLUSION_COLUMNS, left_out)
        self._allowed, self._left_out = [], []

    def codes(self) -> dict[str, int]:
        return dict(sorted(self._codes.items()))

    def counts(self, whom: _People) -> dict[str, Any]:
        """The disclosure row's counts so far."""
        return {
            "requested": whom.count,
            "disclosed": len(self.disclosed),
            "excluded": self.excluded,
            "codes": self.codes(),
            "selection_id": whom.selection,
        }


def _whom(session: Session, actor: Actor, people: Sequence[str], selection: str | None) -> _People:
    if (selection is None) == (not people):
        if selection is None:
            raise Unprocessable("a disclosure names at least one person", code="no_people")
        raise Unprocessable(
            "a disclosure names its people or a selection, not both", code="people_and_selection"
        )
    if selection is None:
        listed = tuple(dict.fromkeys(people))
        return _People(listed, None, len(listed))
    chosen = open_selection(session, actor, selection)
    if chosen.size == 0:
        raise Unprocessable("the selection names nobody yet", code="no_people")
    return _People((), chosen.id, chosen.size)


def _claimed(session: Session, actor: Actor, whom: _People) -> Selection | None:
    """The selection the disclosure uses up, locked, if it names one. A selection is used
    once: a second disclosure of the same people makes a selection of its own."""
    if whom.selection is None:
        return None
    chosen = open_selection(session, actor, whom.selection, for_update=True)
    if chosen.used_by is not None:
        raise Conflict(
            f"the selection was used by disclosure {chosen.used_by}; create another",
            code="selection_used",
        )
    return chosen


def _delivered(
    session: Session,
    clock: Clock,
    policy: CompiledPolicy,
    answer: RecordedDisclosure,
    *,
    actor: Actor,
    keys: KeyStore | None,
    mode: str,
    disclosed: Mapping[str, bool] | None = None,
) -> RecordedDisclosure:
    """`answer`, with the values of its people when it is a delivery."""
    if mode != "deliver" or answer.id is None or keys is None:
        return answer
    if disclosed is None:
        disclosed = dict.fromkeys(disclosed_people(session, answer.id), False)
    row = session.get_one(Disclosure, answer.id)
    delivery = deliver_disclosed(
        session,
        keys,
        clock,
        policy,
        actor=actor,
        disclosure_id=answer.id,
        owners=list(disclosed),
        categories=row.categories,
    )
    people = tuple(DeliveredPerson(owner, values) for owner, values in delivery.values.items())
    return dataclasses.replace(answer, delivered=people, unreadable=delivery.unreadable)


def disclosed_people(session: Session, disclosure_id: int) -> list[str]:
    """The people a disclosure disclosed (owners), by id."""
    return list(
        session.scalars(
            select(DisclosedPerson.person_id)
            .where(DisclosedPerson.disclosure_id == disclosure_id)
            .order_by(DisclosedPerson.person_id)
        )
    )


def person_states(
    session: Session, person_ids: Sequence[str]
) -> tuple[dict[str, PersonState], dict[str, str]]:
    """The state of each person whose data `person_ids` name, by owner id (a visitor who
    signed up is the user they became), and each id's owner; an unknown id has none. A few
    `IN` queries per 2,000 ids, whatever their number."""
    connection = session.connection()
    # Held shared until the disclosure commits: an erasure of one of them waits for it, or
    # it waits for the erasure and finds the person erased (see `locking_people`).
    sql = locking_people(session, _STANDING)
    rows = {row[0]: row for row in select_in(connection, sql, person_ids)}
    owners = {pid: row[1] or pid for pid, row in rows.items()}
    missing = {owner for owner in owners.values() if owner not in rows}
    rows.update({row[0]: row for row in select_in(connection, sql, sorted(missing))})
    owners = {pid: owner for pid, owner in owners.items() if owner in rows}
    wanted = sorted(set(owners.values()))
    choices: dict[str, dict[str, bool]] = {}
    for person_id, topic, granted in select_in(connection, _CHOICES, wanted):
        choices.setdefault(person_id, {})[topic] = bool(granted)
    # Most people have made no choice: they share one state per standing and kind, which
    # spares a bulk disclosure a frozen dataclass built per person.
    shared: dict[tuple[bool, bool, str], PersonState] = {}
    states: dict[str, PersonState] = {}
    for owner in wanted:
        _, _, erased_at, objected_at, kind = rows[owner]
        standing = (erased_at is not None, objected_at is not None, kind)
        made = choices.get(owner)
        if made is not None:
            states[owner] = PersonState(standing[0], standing[1], made, kind)
            continue
        state = shared.get(standing)
        if state is None:
            state = shared[standing] = PersonState(standing[0], standing[1], {}, kind)
        states[owner] = state
    return states, owners


def _approver(session: Session, handle: str) -> StaffInRole:
    """The approver named by their handle: an active staff member, with their role."""
    member = session.scalars(
        select(StaffMember).where(StaffMember.name == handle, StaffMember.active.is_(True))
    ).one_or_none()
    if member is None:
        raise Unprocessable("the approver is not an active staff member", code="approver_not_found")
    return StaffInRole(member.id, member.role)


def _digest(request: DisclosureRequest, whom: _People, mode: str) -> str:
    """What a retry must send again to get the first answer."""
    approver = request.approver.staff_id if request.approver is not None else None
    fields = [
        request.recipient,
        request.purpose,
        sorted(request.categories),
        request.country,
        request.ground,
        request.legal_process,
        approver,
        request.for_recipients_own_purposes,
        mode,
        whom.digested(),
    ]
    return hashlib.sha256(json.dumps(fields, separators=(",", ":")).encode()).hexdigest()


def _earlier_answer(session: Session, key: str, digest: str) -> RecordedDisclosure | None:
    """The answer recorded for `key`, if any; a key sent with another request is refused."""
    row = session.execute(
        select(
            _DISCLOSURES.c.id,
            _DISCLOSURES.c.digest,
            _DISCLOSURES.c.requested,
            _DISCLOSURES.c.disclosed,
            _DISCLOSURES.c.excluded,
            _DISCLOSURES.c.codes,
        ).where(_DISCLOSURES.c.idempotency_key == key)
    ).first()
    if row is None:
        return None
    if row.digest != digest:
        raise Conflict(
            "this idempotency key was used for another disclosure", code="idempotency_key_reused"
        )
    shown = tuple(exclusions_page(session, row.id, limit=EXCLUSIONS_SHOWN))
    return RecordedDisclosure(
        row.id, row.requested, row.disclosed, row.excluded, dict(row.codes), shown, replayed=True
    )


def exclusions_page(
    session: Session, disclosure_id: int, *, start: int = 0, limit: int = 1000
) -> list[tuple[str, str]]:
    """The people the disclosure left out, and why, in the order they were asked for: at
    most `limit`, from the `start`-th (0 is the first)."""
    rows = session.execute(
        select(_EXCLUSIONS.c.person_id, _EXCLUSIONS.c.code)
        .where(_EXCLUSIONS.c.disclosure_id == disclosure_id, _EXCLUSIONS.c.position >= start)
        .order_by(_EXCLUSIONS.c.position)
        .limit(limit)
    ).all()
    return [(str(person), str(code)) for person, code in rows]


def _audited_request(policy: CompiledPolicy, guard: DisclosureGuard) -> dict[str, Any]:
    """The request as the audit log may hold it: only the policy's own names (a name it does
    not know came from the caller and could be anything, personal data included)."""
    request = guard.request
    grounds = {ground.id for ground in policy.policy.transfer_grounds}
    return {
        "recipient": request.recipient if guard.recipient is not None else None,
        "purpose": request.purpose if request.purpose in policy.purpose_basis else None,
        "categories": sorted(
            c for c in request.categories if c in policy.categories or c in policy.group_leaves
        ),
        "country": guard.country if guard.recipient is not None else None,
        "ground": request.ground if request.ground in grounds else None,
        "legal_process": bool((request.legal_process or "").strip()),
        "approver": request.approver.staff_id if request.approver is not None else None,
    }


def _refused(
    session: Session,
    clock: Clock,
    policy: CompiledPolicy,
    *,
    actor: Actor,
    guard: DisclosureGuard,
    requested: int,
) -> RecordedDisclosure:
    """Audit the refusal of the whole request, in the session's transaction, and answer it."""
    decision = guard.decision
    record(
        session,
        clock,
        Event(
            actor.ref,
            "disclosures:disclosure:refused",
            "disclosure",
            outcome="refused",
            details={
                **_audited_request(policy, guard),
                "code": decision.code,
                "requested": requested,
            },
        ),
    )
    return RecordedDisclosure(None, requested, 0, 0, {}, (), refusal=decision)


def _insert_disclosure(
    session: Session,
    clock: Clock,
    policy: CompiledPolicy,
    guard: DisclosureGuard,
    *,
    actor: Actor,
    key: str,
    digest: str,
    mode: str,
    counts: Mapping[str, Any],
) -> int | None:
    """The disclosure's row, with `counts` (see `_Tally.counts`); its id, or None if a row
    with the same key is there already."""
    request = guard.request
    insert = conflict_insert(session)(_DISCLOSURES).values(
        at=clock.now(),
        recipient=request.recipient,
        purpose=request.purpose,
        categories=sorted(guard.categories),
        country=guard.country,
        ground=request.ground,
        legal_process=request.legal_process,
        approver_id=request.approver.staff_id if request.approver is not None else None,
        requester_id=actor.staff_id,
        requester=actor.ref,
        policy_version=policy.version,
        mode=mode,
        idempotency_key=key,
        **counts,
        digest=digest,
    )
    statement = insert.on_conflict_do_nothing(index_elements=["idempotency_key"]).returning(
        _DISCLOSURES.c.id
    )
    found = session.connection().execute(statement).scalar()
    return int(found) if found is not None else None


# --- reading the ledger -----------------------------------------------------------------------


@dataclass(frozen=True)
class LedgerEntry:
    """One disclosure as the ledger holds it."""

    id: int
    at: str
    recipient: str
    purpose: str
    categories: tuple[str, ...]
    country: str | None
    ground: str | None
    legal_process: str | None
    approver_id: int | None
    requester: str
    policy_version: str
    mode: str
    requested: int
    disclosed: int
    excluded: int

    def as_json(self) -> dict[str, object]:
        return {**dataclasses.asdict(self), "categories": list(self.categories)}


def _entry(row: Disclosure) -> LedgerEntry:
    return LedgerEntry(
        row.id,
        row.at.isoformat(),
        row.recipient,
        row.purpose,
        tuple(row.categories),
        row.country,
        row.ground,
        row.legal_process,
        row.approver_id,
        row.requester,
        row.policy_version,
        row.mode,
        row.requested,
        row.disclosed,
        row.excluded,
    )


def disclosures(
    session: Session,
    *,
    filters: Mapping[str, Any] | None = None,
    after: int = 0,
    limit: int = 100,
) -> list[LedgerEntry]:
    """The ledger, oldest first: the disclosures after the id `after`, at most `limit`.
    `filters` may name `recipient`, `purpose`, `ground`, `person` (whose data was
    disclosed), `since` and `until` (datetimes, `until` excluded)."""
    query = select(Disclosure).where(Disclosure.id > after).order_by(Disclosure.id).limit(limit)
    query = _filtered(query, filters)
    return [_entry(row) for row in session.scalars(query)]


_Query = TypeVar("_Query", bound=Select[Any])
_FILTERS = frozenset({"recipient", "purpose", "ground", "person", "since", "until"})


def _filtered(query: _Query, filters: Mapping[str, Any] | None) -> _Query:
    """`query` of disclosures, narrowed by the ledger's `filters` (see `disclosures`)."""
    given = {name: value for name, value in (filters or {}).items() if value is not None}
    unknown = set(given) - _FILTERS
    if unknown:
        raise ValueError(f"not a filter of the ledger: {', '.join(sorted(unknown))}")
    for name in ("recipient", "purpose", "ground"):
        if name in given:
            query = query.where(getattr(Disclosure, name) == given[name])
    if "since" in given:
        query = query.where(Disclosure.at >= given["since"])
    if "until" in given:
        query = query.where(Disclosure.at < given["until"])
    if "person" in given:
        # The person and the visitors merged into them: a visitor disclosed before signing
        # up is in the ledger under the visitor's id.
        person = given["person"]
        members = select(Person.id).where(or_(Person.id == person, Person.merged_into == person))
        query = query.where(
            Disclosure.id.in_(
                select(DisclosedPerson.disclosure_id).where(
                    or_(DisclosedPerson.person_id == person, DisclosedPerson.person_id.in_(members))
                )
            )
        )
    return query


@dataclass(frozen=True)
class PersonDisclosures:
    """The disclosures of one person's data (`person_id`: the owner)."""

    person_id: str
    entries: list[LedgerEntry]


def read_person_disclosures(
    session: Session,
    clock: Clock,
    *,
    actor: str,
    person_id: str,
    after: int = 0,
    limit: int = 100,
) -> PersonDisclosures:
    """The disclosures of the person's data, oldest first, a page at a time; a visitor who
    signed up is the user they became. The read is audited in the session's transaction."""
    owner = owner_of(session, person_id).id
    entries = disclosures(session, filters={"person": owner}, after=after, limit=limit)
    record(
        session,
        clock,
        Event(
            actor,
            "disclosures:person:read",
            f"person:{owner}",
            details={"after": after, "entries": len(entries)},
        ),
    )
    return PersonDisclosures(owner, entries)


def disclosure_exists(session: Session, disclosure_id: int) -> bool:
    return session.get(Disclosure, disclosure_id) is not None


# An export reads the ledger a page at a time, each page in a read unit of its own, so
# that a long export holds no transaction open.
_EXPORT_PAGE = 1000
_PEOPLE_PAGE = 10_000


def export_ledger(
    reading: Callable[[], AbstractContextManager[Session]],
    *,
    filters: Mapping[str, Any] | None = None,
    people: bool = False,
) -> Iterator[dict[str, object]]:
    """The ledger as lines for NDJSON, oldest first: each disclosure (`"kind":
    "disclosure"`) and, with `people`, after it each person it disclosed (`"kind":
    "person"`), read a page at a time in read units opened by `reading`."""
    after = 0
    while True:
        with reading() as session:
            entries = disclosures(session, filters=filters, after=after, limit=_EXPORT_PAGE)
        for entry in entries:
            yield {"kind": "disclosure", **entry.as_json()}
            if people:
                yield from _exported_people(reading, entry.id)
        if len(entries) < _EXPORT_PAGE:
            return
        after = entries[-1].id


def _exported_people(
    reading: Callable[[], AbstractContextManager[Session]], disclosure_id: int
) -> Iterator[dict[str, object]]:
    last = ""
    while True:
        with reading() as session:
            rows = session.execute(
                select(DisclosedPerson.person_id, DisclosedPerson.shine_the_light)
                .where(
                    DisclosedPerson.disclosure_id == disclosure_id,
                    DisclosedPerson.person_id > last,
                )
                .order_by(DisclosedPerson.person_id)
                .limit(_PEOPLE_PAGE)
            ).all()
        for person_id, shine in rows:
            yield {
                "kind": "person",
                "disclosure_id": disclosure_id,
                "person_id": person_id,
                "shine_the_light": bool(shine),
            }
        if len(rows) < _PEOPLE_PAGE:
            return
        last = rows[-1][0]


def count_disclosures(session: Session, *, filters: Mapping[str, Any] | None = None) -> int:
    """How many disclosures `filters` select (for an export's progress)."""
    query = _filtered(select(func.count()).select_from(Disclosure), filters)
    return int(session.scalar(query) or 0)


def record_export(
    session: Session,
    clock: Clock,
    *,
    actor: str,
    filters: Mapping[str, Any],
    people: bool,
) -> None:
    """Audit an export of the ledger: who, the names of its filters (their values came
    from the caller), and whether it lists people."""
    given = {
        name: (value.isoformat() if hasattr(value, "isoformat") else value)
        for name, value in filters.items()
        if value is not None
    }
    record(
        session,
        clock,
        Event(
            actor,
            "disclosures:ledger:exported",
            "disclosures",
            details={"filters": sorted(given), "people": people},
        ),
    )
