"""Erasure: destroy the person's data keys, then delete their records.

The keys go first and for good, so from that moment nothing of theirs decrypts, not even
from a copy of the data taken earlier. The audit entry keeps ids and counts only.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from charter.audit.chain import Event, record
from charter.clock import Clock
from charter.consent.choices import forget_choices
from charter.vault.keystore import KeyStore
from charter.vault.models import LogEvent, Person, Record, VisitorId
from charter.vault.people import owner_of


@dataclass(frozen=True)
class ErasureReceipt:
    person_id: str
    keys_destroyed: int
    records_deleted: int
    events_deleted: int


def erase_person(
    session: Session, keys: KeyStore, clock: Clock, *, actor: str, person_id: str
) -> ErasureReceipt:
    """Make a person's data unreadable at once, then remove it; safe to repeat. The id of
    a visitor who signed up stands for the user they became (C14): the user is erased."""
    person = owner_of(session, person_id)
    # The person and the visitors merged into them, their rows locked first: a batch of
    # events or a submission for them that is being stored (it holds these rows shared, see
    # `vault.events`) commits before the deletes below, which then take its rows too; one
    # that starts later finds them erased.
    people = session.scalars(
        select(Person)
        .where(or_(Person.id == person.id, Person.merged_into == person.id))
        .with_for_update()
    ).all()
    members = [person.id, *(p.id for p in people if p.id != person.id)]
    destroyed = keys.destroy(members)
    records = session.execute(delete(Record).where(Record.person_id.in_(members)))
    events = session.execute(delete(LogEvent).where(LogEvent.person_id.in_(members)))
    session.execute(delete(VisitorId).where(VisitorId.person_id.in_(members)))
    forget_choices(session, members)
    now = clock.now()
    for member in people:
        member.erased_at = member.erased_at or now
        member.email_index = None
    receipt = ErasureReceipt(
        person.id,
        destroyed,
        int(getattr(records, "rowcount", 0) or 0),
        int(getattr(events, "rowcount", 0) or 0),
    )
    record(
        session,
        clock,
        Event(
            actor,
            "vault:person:erased",
            f"person:{person.id}",
            details={
                "keys_destroyed": receipt.keys_destroyed,
                "records_deleted": receipt.records_deleted,
                "events_deleted": receipt.events_deleted,
                "linked_visitors": len(members) - 1,
            },
        ),
    )
    return receipt
