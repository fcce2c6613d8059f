"""The one door to personal data: decide, record the decision, and only then decrypt.

Nothing else in Charter opens a sealed value. Every question (allowed or not) is written to
the audit log in the caller's transaction, so a refusal is recorded as surely as a use.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from charter.access.decide import Decision, PersonState, decide
from charter.audit.chain import Event, record
from charter.clock import Clock
from charter.consent.choices import current_choices
from charter.policy.compiled import CompiledPolicy
from charter.staff.service import Actor
from charter.vault.collection import record_ad
from charter.vault.crypto import DecryptionFailed, Sealer
from charter.vault.events import decode_payload, event_ad
from charter.vault.keystore import KeyStore
from charter.vault.models import LogEvent, Person, Record
from charter.vault.people import household, owner_of


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
    event_limit: int = 1000,
) -> Use:
    """Decide; if allowed, return the person's values in `categories`, decrypted."""
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
    values: list[Value] = []
    withheld = unreadable = 0
    for row in session.scalars(
        select(Record)
        .where(Record.person_id.in_(members), Record.category.in_(wanted))
        .order_by(Record.collected_at)
    ):
        point = policy.collection_points.get(row.collection_point)
        if (
            point is not None
            and point.readable_by_roles is not None
            and actor.role not in point.readable_by_roles
        ):
            withheld += 1  # e.g. job applications: recruiters only (C6)
            continue
        opened = _opened(sealers.get(row.person_id), row.sealed, record_ad(row.id, row.person_id))
        if opened is None:
            unreadable += 1
            continue
        plain = opened.decode()
        values.append(
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
    log_fields = {name: cat for name, cat in policy.log_fields.items() if cat in wanted}
    if log_fields:
        events = session.scalars(
            select(LogEvent)
            .where(LogEvent.person_id.in_(members))
            .order_by(LogEvent.collected_at.desc())
            .limit(event_limit)
        )
        for event in events:
            sealer = sealers.get(event.person_id)
            opened = _opened(sealer, event.sealed, event_ad(event.uid, event.person_id))
            if opened is None:
                unreadable += 1
                continue
            payload = decode_payload(opened)
            for name, category in log_fields.items():
                if name in payload:
                    values.append(
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
    if unreadable:
        record(
            session,
            clock,
            Event(
                actor.ref,
                "access:sealed_value:rejected",
                f"person:{members[0]}",
                outcome="failed",
                details={"unreadable": unreadable},
            ),
        )
    return Use(decision, tuple(values), withheld, unreadable)


def _opened(sealer: Sealer | None, sealed: bytes, associated: bytes) -> bytes | None:
    """The plaintext, or None if the value does not decrypt here."""
    if sealer is None:
        return None
    try:
        return sealer.open(sealed, associated)
    except DecryptionFailed:
        return None
