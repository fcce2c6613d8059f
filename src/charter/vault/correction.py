"""Correcting a person's data (CCPA §1798.106): the new value replaces the old, and the old
is erased. The new value is sealed under the person's key like any collected value."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from charter.audit.chain import Event, record
from charter.clock import Clock
from charter.errors import NotFound
from charter.policy.compiled import CompiledPolicy
from charter.vault.collection import check_fields
from charter.vault.identifiers import BlindIndex, new_person_id, new_record_ids
from charter.vault.keystore import KeyStore, sealers_to_write
from charter.vault.models import Person, Record
from charter.vault.people import household, owner_of
from charter.vault.sealing import SEAL_VERSION, record_ad

# The category whose value is also the person's blind index (how they are found).
EMAIL_CATEGORY = "contact.email"


@dataclass(frozen=True)
class Correction:
    person_id: str
    field: str
    category: str
    # The stored values of the field replaced (and erased).
    replaced: int


def correct_field(
    session: Session,
    keys: KeyStore,
    clock: Clock,
    policy: CompiledPolicy,
    *,
    actor: str,
    person_id: str,
    field: str,
    value: str,
) -> Correction:
    """Replace every stored value of `field` of the person (and the visitors merged into
    them) by `value`, as the person gave it, in the session's transaction; the old values
    are deleted. The value is checked as its collection point checks it. Audited without
    either value."""
    owner = owner_of(session, person_id)
    members = household(session, owner.id)
    held = list(
        session.scalars(
            select(Record)
            .where(Record.person_id.in_(members), Record.field == field)
            .order_by(Record.collected_at.desc(), Record.id.desc())
        )
    )
    if not held:
        raise NotFound("Charter holds no value of that field for the person", code="field_not_held")
    latest = held[0]
    point = policy.collection_points.get(latest.collection_point)
    if point is not None:
        check_fields(point, {field: value}, mandatory=False)
    sealer = sealers_to_write(keys, [owner.id])[owner.id]
    session.execute(delete(Record).where(Record.id.in_([row.id for row in held])))
    [record_id] = new_record_ids(1)
    row = Record(
        id=record_id,
        person_id=owner.id,
        submission_id=new_person_id(),
        collection_point=latest.collection_point,
        field=field,
        category=latest.category,
        source="given",
        source_name=None,
        policy_version=policy.version,
        collected_at=clock.now(),
        published=latest.published,
        seal_version=SEAL_VERSION,
    )
    row.sealed = sealer.seal(value.encode(), record_ad(row))
    session.add(row)
    if latest.category == EMAIL_CATEGORY:
        person = session.get_one(Person, owner.id)
        person.email_index = BlindIndex(keys.index_key()).email(value)
    record(
        session,
        clock,
        Event(
            actor,
            "vault:field:corrected",
            f"person:{owner.id}",
            details={"field": field, "category": latest.category, "replaced": len(held)},
        ),
    )
    return Correction(owner.id, field, latest.category, len(held))
