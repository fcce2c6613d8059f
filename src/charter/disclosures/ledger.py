"""Recording disclosures: each request guarded once, each person decided, one ledger row per
person disclosed, all in one transaction with its audit entry (C21, C22, C24).

A refused request records no ledger row, and its refusal is audited all the same: the
refusal's audit entry is committed before the refusal is raised. A retry with the same
idempotency key gets the first answer back and records nothing again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from charter.access.decide import PersonState
from charter.audit.chain import Event, record
from charter.clock import Clock
from charter.db import bulk_insert, conflict_insert, select_in, table_of
from charter.disclosures.guards import (
    DisclosureDecision,
    DisclosureGuard,
    DisclosureRequest,
    StaffInRole,
    guard_disclosure,
)
from charter.disclosures.models import DisclosedPerson, Disclosure
from charter.errors import Conflict, Unprocessable
from charter.policy.compiled import CompiledPolicy
from charter.staff.models import StaffMember
from charter.staff.service import Actor
from charter.vault.people import owner_of

# What a disclosure does with the people allowed. Only `record` for now: `deliver`, which
# also returns their values through the `access` door, is still to come (issue 10).
MODES = ("record",)
# The code of a person id that names nobody Charter knows.
PERSON_NOT_FOUND = "person_not_found"

_DISCLOSURES = table_of(Disclosure)
_LEDGER_COLUMNS = ("disclosure_id", "person_id", "shine_the_light")
_STANDING = "SELECT id, merged_into, erased_at, objected_at, kind FROM people WHERE id IN ({marks})"
_CHOICES = "SELECT person_id, topic, granted FROM choices WHERE person_id IN ({marks})"


class DisclosureRefused(Unprocessable):
    """The policy refuses the disclosure as a whole; `code` is the guard's."""


@dataclass(frozen=True)
class RecordedDisclosure:
    """The answer to a disclosure request: what was recorded, who was left out and why."""

    id: int
    requested: int
    disclosed: int
    # (person id, reason code) for each person left out, in the order they were asked for.
    exclusions: tuple[tuple[str, str], ...]
    # Whether this is the answer to an earlier request with the same idempotency key.
    replayed: bool = False

    @property
    def excluded(self) -> int:
        return len(self.exclusions)

    def codes(self) -> dict[str, int]:
        """How many people were left out for each reason."""
        return dict(sorted(Counter(code for _, code in self.exclusions).items()))


def requester_of(actor: Actor) -> StaffInRole:
    """The requester of a disclosure made with `actor`'s key."""
    return StaffInRole(actor.staff_id, actor.role)


def record_disclosure(
    session: Session,
    clock: Clock,
    policy: CompiledPolicy,
    *,
    actor: Actor,
    request: DisclosureRequest,
    people: Sequence[str],
    idempotency_key: str,
    approver: str | None = None,
    mode: str = "record",
) -> RecordedDisclosure:
    """Guard `request` once, decide each of `people`, and record one ledger row for each
    person allowed, with one audit entry for the disclosure, in the session's transaction.

    `approver` is the handle of the staff member who approved it (for law enforcement and
    government), in place of `request.approver`. A refusal of the request as a whole raises
    `DisclosureRefused` with the guard's code, after committing the session's transaction
    with the refusal's audit entry in it (and nothing else). A person id that names nobody is
    left out as `person_not_found`. The same `idempotency_key` sent again with the same
    request returns the first answer and records nothing; with another request it is
    refused (`idempotency_key_reused`)."""
    if mode not in MODES:
        raise Unprocessable(
            f"the mode '{mode}' is not supported; use one of: {', '.join(MODES)}",
            code="unsupported_mode",
        )
    if request.requester != requester_of(actor):
        raise ValueError("the requester of a disclosure is the actor who makes it")
    if approver is not None:
        request = dataclasses.replace(request, approver=_approver(session, approver))
    wanted = list(dict.fromkeys(people))
    if not wanted:
        raise Unprocessable("a disclosure names at least one person", code="no_people")
    digest = _digest(request, wanted, mode)
    earlier = _earlier_answer(session, idempotency_key, digest)
    if earlier is not None:
        return earlier
    guard = guard_disclosure(policy, request)
    if not guard.decision.allowed:
        _refuse(session, clock, policy, actor=actor, guard=guard, requested=len(wanted))
    states, owners = person_states(session, wanted)
    exclusions: list[tuple[str, str]] = []
    disclosed: dict[str, DisclosureDecision] = {}
    for person_id in wanted:
        owner = owners.get(person_id)
        if owner is None:
            exclusions.append((person_id, PERSON_NOT_FOUND))
            continue
        decision = guard.decide(states[owner])
        if decision.allowed:
            disclosed.setdefault(owner, decision)
        else:
            exclusions.append((person_id, decision.code))
    disclosure_id = _insert_disclosure(
        session,
        clock,
        policy,
        guard,
        actor=actor,
        key=idempotency_key,
        digest=digest,
        mode=mode,
        requested=len(wanted),
        disclosed=len(disclosed),
        exclusions=exclusions,
    )
    if disclosure_id is None:
        # Another request with this key was recorded since we looked (on PostgreSQL, the
        # insert waited for it to commit): its answer is the answer.
        earlier = _earlier_answer(session, idempotency_key, digest)
        if earlier is None:  # pragma: no cover - the conflicting row exists
            raise Conflict("the disclosure could not be recorded", code="conflict")
        return earlier
    bulk_insert(
        session.connection(),
        "disclosed_people",
        _LEDGER_COLUMNS,
        [(disclosure_id, owner, d.shine_the_light) for owner, d in disclosed.items()],
    )
    answer = RecordedDisclosure(disclosure_id, len(wanted), len(disclosed), tuple(exclusions))
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
                "codes": answer.codes(),
                "shine_the_light": guard.decision.shine_the_light,
            },
        ),
    )
    return answer


def person_states(
    session: Session, person_ids: Sequence[str]
) -> tuple[dict[str, PersonState], dict[str, str]]:
    """The state of each person whose data `person_ids` name, by owner id (a visitor who
    signed up is the user they became), and each id's owner; an unknown id has none. A few
    `IN` queries per 2,000 ids, whatever their number."""
    connection = session.connection()
    rows = {row[0]: row for row in select_in(connection, _STANDING, person_ids)}
    owners = {pid: row[1] or pid for pid, row in rows.items()}
    missing = {owner for owner in owners.values() if owner not in rows}
    rows.update({row[0]: row for row in select_in(connection, _STANDING, sorted(missing))})
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


def _digest(request: DisclosureRequest, people: Sequence[str], mode: str) -> str:
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
        list(people),
    ]
    return hashlib.sha256(json.dumps(fields, separators=(",", ":")).encode()).hexdigest()


def _earlier_answer(session: Session, key: str, digest: str) -> RecordedDisclosure | None:
    """The answer recorded for `key`, if any; a key sent with another request is refused."""
    row = (
        session.connection()
        .execute(
            select(
                _DISCLOSURES.c.id,
                _DISCLOSURES.c.digest,
                _DISCLOSURES.c.requested,
                _DISCLOSURES.c.disclosed,
                _DISCLOSURES.c.exclusions,
            ).where(_DISCLOSURES.c.idempotency_key == key)
        )
        .first()
    )
    if row is None:
        return None
    if row.digest != digest:
        raise Conflict(
            "this idempotency key was used for another disclosure", code="idempotency_key_reused"
        )
    exclusions = tuple((str(person), str(code)) for person, code in row.exclusions)
    return RecordedDisclosure(row.id, row.requested, row.disclosed, exclusions, replayed=True)


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


def _refuse(
    session: Session,
    clock: Clock,
    policy: CompiledPolicy,
    *,
    actor: Actor,
    guard: DisclosureGuard,
    requested: int,
) -> None:
    """Audit the refusal of the whole request, commit it, and raise it."""
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
    # The refusal must outlive the rollback that raising it brings: nothing else was written.
    session.commit()
    raise DisclosureRefused(decision.reason, code=decision.code)


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
    requested: int,
    disclosed: int,
    exclusions: list[tuple[str, str]],
) -> int | None:
    """The disclosure's row; its id, or None if a row with the same key is there already."""
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
        requested=requested,
        disclosed=disclosed,
        excluded=len(exclusions),
        exclusions=[list(pair) for pair in exclusions],
        idempotency_key=key,
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
    given = {name: value for name, value in (filters or {}).items() if value is not None}
    unknown = set(given) - {"recipient", "purpose", "ground", "person", "since", "until"}
    if unknown:
        raise ValueError(f"not a filter of the ledger: {', '.join(sorted(unknown))}")
    query = select(Disclosure).where(Disclosure.id > after).order_by(Disclosure.id).limit(limit)
    for name in ("recipient", "purpose", "ground"):
        if name in given:
            query = query.where(getattr(Disclosure, name) == given[name])
    if "since" in given:
        query = query.where(Disclosure.at >= given["since"])
    if "until" in given:
        query = query.where(Disclosure.at < given["until"])
    if "person" in given:
        query = query.where(
            Disclosure.id.in_(
                select(DisclosedPerson.disclosure_id).where(
                    DisclosedPerson.person_id == given["person"]
                )
            )
        )
    return [_entry(row) for row in session.scalars(query)]


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
