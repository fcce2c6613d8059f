"""Finding a person by e-mail, for staff answering a rights request: the address is matched
through its blind index, never stored or recorded in clear."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from charter.audit.chain import Event, record
from charter.clock import Clock
from charter.errors import Unprocessable
from charter.policy.compiled import CompiledPolicy
from charter.staff.service import Actor
from charter.vault.identifiers import BlindIndex, is_email_address
from charter.vault.people import people_by_email


@dataclass(frozen=True)
class FoundPerson:
    """A person the address belongs to, by opaque id, and the kind of data subject they are
    (user, visitor, job_applicant, correspondent)."""

    person_id: str
    kind: str


def find_people_by_email(
    session: Session,
    clock: Clock,
    policy: CompiledPolicy,
    index: BlindIndex,
    *,
    actor: Actor,
    email: str,
) -> list[FoundPerson]:
    """Everyone not erased whom Charter knows by `email` (who signed up with it or wrote from
    it), users first; an empty list when nobody is. The address is normalised as it was when
    it was stored. A role limited to some data subjects finds only those (C6).

    The look-up is recorded with its actor, the number of matches and the ids found. Not the
    address, nor its blind index: the audit log is kept after an erasure, and an index kept
    there would let anyone holding the index key test a guessed address against it."""
    if not is_email_address(email):
        # The field is named, the value never repeated (see web/errors.py, ECHO_LIMIT).
        raise Unprocessable(
            "email is not an e-mail address", code="invalid_email", details={"fields": ["email"]}
        )
    subjects = policy.role_subjects.get(actor.role)
    found = [
        FoundPerson(person.id, person.kind)
        for person in people_by_email(session, index, email)
        if subjects is None or policy.covers(subjects, person.kind)
    ]
    record(
        session,
        clock,
        Event(
            actor.ref,
            "vault:people:looked_up",
            details={"by": "email", "matches": len(found), "people": [p.person_id for p in found]},
        ),
    )
    return found
