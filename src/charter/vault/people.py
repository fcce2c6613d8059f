"""Finding and creating people: by id, by visitor cookie, or by e-mail (blind index)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from charter.audit.chain import Event, record
from charter.clock import Clock
from charter.consent.choices import carry_choices
from charter.db import select_in, table_of
from charter.errors import Conflict, NotFound, Unprocessable
from charter.vault.identifiers import BlindIndex, new_person_id
from charter.vault.models import Person, VisitorId


class PersonGone(Conflict):
    """The person was erased or objected to the policy: nothing more is collected."""


def locking_people(session: Session, sql: str, *, lock: bool = True) -> str:
    """`sql`, which reads `people p`, made to lock the rows it reads (shared) until the
    transaction ends, when `lock`.

    On PostgreSQL an erasure locks its people's rows before it deletes their data (see
    `vault.erasure`), so work that holds them shared (a batch of events, a disclosure)
    either commits first, and is erased with the rest, or waits and then finds them erased.
    SQLite runs one writer at a time: nothing to lock.
    """
    if lock and session.get_bind().dialect.name == "postgresql":
        return sql + " FOR SHARE OF p"
    return sql


def get_person(session: Session, person_id: str) -> Person:
    person = session.get(Person, person_id)
    if person is None:
        raise NotFound("no person with that id", code="person_not_found")
    return person


def ensure_active(person: Person) -> None:
    _ensure_standing(person.erased_at, person.objected_at)


def _ensure_standing(erased_at: dt.datetime | None, objected_at: dt.datetime | None) -> None:
    if erased_at is not None:
        raise PersonGone("the person was erased", code="person_erased")
    if objected_at is not None:
        raise PersonGone(
            "the person objected to the policy; their data is no longer processed",
            code="person_objected",
        )


def new_person(
    session: Session, clock: Clock, kind: str, *, customer_id: str | None = None
) -> Person:
    person = Person(id=new_person_id(), kind=kind, customer_id=customer_id, created_at=clock.now())
    session.add(person)
    return person


def visitors(
    session: Session, clock: Clock, index: BlindIndex, visitor_ids: Iterable[str]
) -> dict[str, str]:
    """visitor id -> person id, creating a visitor person for each one never seen before."""
    return visitors_by_index(session, clock, {index.visitor(v): v for v in visitor_ids})


def visitors_by_index(session: Session, clock: Clock, by_index: dict[str, str]) -> dict[str, str]:
    """`visitors`, for visitor ids whose blind index is already known (index -> visitor id)."""
    if not by_index:
        return {}
    found = {
        by_index[digest]: person_id
        for digest, person_id in select_in(session.connection(), _VISITOR_PEOPLE, by_index)
    }
    found.update(
        new_visitors(session, clock, {d: v for d, v in by_index.items() if v not in found})
    )
    return found


def new_visitors(session: Session, clock: Clock, by_index: dict[str, str]) -> dict[str, str]:
    """A visitor person for each visitor id (blind index -> visitor id) known to be new."""
    made: dict[str, str] = {}
    for digest, visitor_id in by_index.items():
        person = new_person(session, clock, "visitor")
        session.add(VisitorId(index=digest, person_id=person.id))
        made[visitor_id] = person.id
    session.flush()
    return made


_VISITOR_PEOPLE = 'SELECT "index", person_id FROM visitor_ids WHERE "index" IN ({marks})'


def people_by_email(session: Session, index: BlindIndex, address: str) -> list[Person]:
    """Everyone not erased who signed up with or wrote from `address`, users first."""
    found = session.scalars(
        select(Person)
        .where(
            Person.email_index == index.email(address),
            Person.erased_at.is_(None),
            Person.merged_into.is_(None),
        )
        .order_by(Person.created_at, Person.id)
    ).all()
    return sorted(found, key=lambda person: person.kind != "user")


def person_by_email(session: Session, index: BlindIndex, address: str) -> Person | None:
    """The person behind `address`: the user who signed up with it, else who wrote from it."""
    found = people_by_email(session, index, address)
    return found[0] if found else None


def correspondent_by_email_index(session: Session, digest: str) -> str | None:
    """The correspondent, still apart from any account, who wrote from the address with this
    blind index before."""
    return session.scalars(
        select(Person.id)
        .where(
            Person.email_index == digest,
            Person.kind == "correspondent",
            Person.merged_into.is_(None),
            Person.erased_at.is_(None),
            Person.objected_at.is_(None),
        )
        .order_by(Person.created_at, Person.id)
    ).first()


def owner_of(session: Session, person_id: str) -> Person:
    """The person whose data this is: the user a visitor or correspondent was merged into."""
    person = get_person(session, person_id)
    return get_person(session, person.merged_into) if person.merged_into is not None else person


_PEOPLE = table_of(Person)
# FOR SHARE on PostgreSQL (SQLite, one writer at a time, has no such clause): the row
# stays locked until the write that asked commits, and an erasure (which locks it first,
# see `vault.erasure`) waits for that write, or that write for the erasure.
_STANDING = (
    select(_PEOPLE.c.merged_into, _PEOPLE.c.erased_at, _PEOPLE.c.objected_at, _PEOPLE.c.kind)
    .where(_PEOPLE.c.id == bindparam("person_id"))
    .with_for_update(read=True)
)


def active_owner_id(session: Session, person_id: str) -> str:
    """The id of `owner_of(person_id)`, refused as `ensure_active` refuses, for a write
    about them: their row stays locked until it commits. Plain columns, not ORM objects:
    this runs for every saved choice."""
    return active_owner(session, person_id)[0]


def active_owner(session: Session, person_id: str) -> tuple[str, str]:
    """`active_owner_id`, and the owner's kind (visitor, user, job_applicant, ...)."""
    connection = session.connection()
    row = connection.execute(_STANDING, {"person_id": person_id}).first()
    if row is None:
        raise NotFound("no person with that id", code="person_not_found")
    if row.merged_into is not None:
        person_id = row.merged_into
        row = connection.execute(_STANDING, {"person_id": person_id}).first()
        if row is None:  # pragma: no cover - a merge names an existing user
            raise NotFound("no person with that id", code="person_not_found")
    _ensure_standing(row.erased_at, row.objected_at)
    return person_id, str(row.kind)


@dataclass(frozen=True)
class SignedUp:
    user: Person
    # Someone signed up with the address before: this user does not get it (see `sign_up`).
    address_in_use: bool


def sign_up(
    session: Session,
    clock: Clock,
    index: BlindIndex,
    *,
    visitor_ids: list[str],
    email: str | None,
    customer_id: str | None,
) -> SignedUp:
    """Create the user; the history of the visitor ids they signed up from becomes theirs
    (C14). Correspondence sent from their address before stays apart: anyone can write from
    any address, so it joins them only once the sender is verified.

    A sign-up with an address someone signed up with before is answered as any other (the
    answer must not tell whether an address has an account), but the address stays with the
    first account: this user is found by no e-mail, and the attempt is audited."""
    holders = people_by_email(session, index, email) if email is not None else []
    address_in_use = any(person.kind == "user" for person in holders)
    linked_ids = list(visitors(session, clock, index, visitor_ids).values())
    # Locked, as an erasure locks them (see `vault.erasure`): the merge below and an erasure
    # of one of these visitors take turns.
    linked = session.scalars(
        select(Person).where(Person.id.in_(linked_ids)).with_for_update()
    ).all()
    for person in linked:
        ensure_active(person)
        # A visitor merged into a user stays theirs: a second sign-up may not take the history.
        if person.kind != "visitor" or person.merged_into is not None:
            raise Unprocessable(
                "a visitor id already belongs to a signed-up user", code="visitor_taken"
            )
    user = new_person(session, clock, "user", customer_id=customer_id)
    if email is not None and not address_in_use:
        user.email_index = index.email(email)
    session.flush()
    for person in linked:
        person.merged_into = user.id
    # Choices made before sign-up (a GPC signal, a cookie banner) still hold for the user.
    carry_choices(session, [person.id for person in linked], user.id)
    return SignedUp(user, address_in_use)


def join_correspondence(
    session: Session, clock: Clock, *, person_id: str, email_index: str, actor: str
) -> bool:
    """The letters written from an address join the account that holds it, once the person
    proved they control the address (a verification link mailed to it): until then they
    stay apart (see `vault.collection`). Only for the account's own address: a link proves
    the address, not a person id a request named. Returns whether a correspondent joined."""
    owner = session.get(Person, person_id, with_for_update=True)
    if owner is None or owner.email_index != email_index or owner.erased_at is not None:
        return False
    found = correspondent_by_email_index(session, email_index)
    if found is None:
        return False
    correspondent = session.get_one(Person, found, with_for_update=True)
    correspondent.merged_into = owner.id
    record(
        session,
        clock,
        Event(
            actor,
            "vault:correspondence:joined",
            f"person:{owner.id}",
            details={"correspondent": correspondent.id},
        ),
    )
    return True


def household(session: Session, person_id: str) -> list[str]:
    """The person and every visitor merged into them: whose records are theirs."""
    merged = session.scalars(select(Person.id).where(Person.merged_into == person_id)).all()
    return [person_id, *merged]
