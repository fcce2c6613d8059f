"""Erasure: destroy the person's data keys, then delete their records, as a recorded
procedure across the two databases.

Keys live apart from the data, so no one transaction spans both. An erasure therefore runs
in three steps, each durable before the next: the intent is committed with its audit entry
(the person is marked erased at once, so nothing more is collected or used); the keys are
destroyed, and from that moment nothing of theirs decrypts, not even from a copy of the data
taken earlier; then their data is deleted and the completion audited, in one transaction.
An erasure interrupted after its intent is finished at the next start (`resume_erasures`).
The audit entries keep ids and counts only.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from charter.audit.chain import Event, record
from charter.clock import Clock
from charter.consent.choices import forget_choices
from charter.db import Database
from charter.jobs.procedures import (
    Recorded,
    finish_procedure,
    lock_procedure,
    start_procedure,
    unfinished,
)
from charter.mail.outbox import forget_mail
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
    db: Database, keys: KeyStore, clock: Clock, *, actor: str, person_id: str
) -> ErasureReceipt:
    """Make a person's data unreadable at once, then remove it; safe to repeat, and an
    interrupted erasure of theirs is finished by the next call. The id of a visitor who
    signed up stands for the user they became (C14): the user is erased."""
    with db.writing() as session:
        started = _start(session, clock, actor=actor, person_id=person_id)
    if isinstance(started, ErasureReceipt):
        return started
    return _finish(db, keys, clock, started)


def resume_erasures(db: Database, keys: KeyStore, clock: Clock) -> list[ErasureReceipt]:
    """Finish every erasure whose intent was recorded but whose completion was not."""
    with db.reading() as session:
        pending = unfinished(session, "erasure")
    return [_finish(db, keys, clock, procedure) for procedure in pending]


def _subject(person_id: str) -> str:
    return f"person:{person_id}"


def _lock_household(session: Session, person_id: str) -> list[Person]:
    """The person and the visitors merged into them, their rows locked: a batch of events
    or a submission for them that is being stored (it holds these rows shared, see
    `vault.events`) commits first; one that starts later finds them erased."""
    return list(
        session.scalars(
            select(Person)
            .where(or_(Person.id == person_id, Person.merged_into == person_id))
            .order_by(Person.id)
            .with_for_update()
        )
    )


def _start(
    session: Session, clock: Clock, *, actor: str, person_id: str
) -> Recorded | ErasureReceipt:
    """Record the intent and mark the household erased; or the erasure already under way, or
    the empty receipt of a person erased before."""
    person = owner_of(session, person_id)
    people = _lock_household(session, person.id)
    under_way = unfinished(session, "erasure", _subject(person.id))
    if under_way:
        return under_way[0]
    if person.erased_at is not None:
        return ErasureReceipt(person.id, 0, 0, 0)
    members = [person.id, *(p.id for p in people if p.id != person.id)]
    now = clock.now()
    for member in people:
        member.erased_at = member.erased_at or now
        member.email_index = None
    procedure = start_procedure(
        session,
        clock,
        kind="erasure",
        subject=_subject(person.id),
        actor=actor,
        details={"members": members},
    )
    record(
        session,
        clock,
        Event(
            actor,
            "vault:erasure:started",
            _subject(person.id),
            details={"procedure": procedure.id, "linked_visitors": len(members) - 1},
        ),
    )
    return procedure


def _finish(db: Database, keys: KeyStore, clock: Clock, procedure: Recorded) -> ErasureReceipt:
    """Destroy the keys, then delete the data and record the completion."""
    members = [str(member) for member in procedure.details["members"]]
    owner = members[0]
    destroyed = keys.destroy(members)
    with db.writing() as session:
        _lock_household(session, owner)
        if lock_procedure(session, procedure.id).state != "started":
            # Another process finished it meanwhile; its keys are gone as well.
            return ErasureReceipt(owner, destroyed, 0, 0)
        records = session.execute(delete(Record).where(Record.person_id.in_(members)))
        events = session.execute(delete(LogEvent).where(LogEvent.person_id.in_(members)))
        session.execute(delete(VisitorId).where(VisitorId.person_id.in_(members)))
        forget_choices(session, members)
        messages = forget_mail(session, members)
        receipt = ErasureReceipt(
            owner,
            destroyed,
            int(getattr(records, "rowcount", 0) or 0),
            int(getattr(events, "rowcount", 0) or 0),
        )
        counts = {
            "keys_destroyed": receipt.keys_destroyed,
            "records_deleted": receipt.records_deleted,
            "events_deleted": receipt.events_deleted,
            "messages_deleted": messages,
        }
        finish_procedure(session, clock, procedure.id, details=counts)
        record(
            session,
            clock,
            Event(
                procedure.actor,
                "vault:person:erased",
                _subject(owner),
                details={
                    **counts,
                    "linked_visitors": len(members) - 1,
                    "procedure": procedure.id,
                },
            ),
        )
    return receipt
