"""A person's choices, saved and read by any id of theirs: the vault knows who a person is
(a visitor who signed up is the user they became), `consent` keeps what they chose."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy.orm import Session

from charter.clock import Clock
from charter.consent.choices import (
    ChoiceView,
    Method,
    choice_history,
    current_choices,
    set_choices,
)
from charter.policy.compiled import CompiledPolicy
from charter.vault.people import active_owner_id, owner_of


@dataclass(frozen=True)
class PersonChoices:
    """Whose choices these are (the owner), the choices in force, and perhaps their history."""

    person_id: str
    current: Mapping[str, bool]
    history: tuple[ChoiceView, ...] = ()


def save_choices(
    session: Session,
    clock: Clock,
    policy: CompiledPolicy,
    *,
    actor: str,
    person_id: str,
    choices: Mapping[str, bool],
    method: Method,
    gpc: bool = False,
) -> PersonChoices:
    """Record the choices of the person behind `person_id`, refused if they were erased or
    objected; they govern the very next decision."""
    owner = active_owner_id(session, person_id)
    in_force = set_choices(
        session,
        clock,
        policy,
        actor=actor,
        person_id=owner,
        choices=choices,
        method=method,
        gpc=gpc,
    )
    return PersonChoices(owner, in_force.current)


def choices_of(session: Session, person_id: str) -> PersonChoices:
    """The choices in force of the person behind `person_id`, with their full history."""
    owner = owner_of(session, person_id).id
    return PersonChoices(
        owner,
        current_choices(session, owner).current,
        tuple(choice_history(session, owner)),
    )
