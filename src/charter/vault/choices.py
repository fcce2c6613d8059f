"""A person's choices, saved and read by any id of theirs: the vault knows who a person is
(a visitor who signed up is the user they became), `consent` keeps what they chose."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from charter.audit.chain import Event, record
from charter.clock import Clock
from charter.consent.choices import (
    ChoiceView,
    Method,
    choice_history,
    current_choices,
    set_choices,
    topics,
)
from charter.consent.receipts import ReceiptRefused, ReceiptSigner
from charter.errors import Conflict, Gone, Unprocessable
from charter.policy.compiled import CompiledPolicy
from charter.vault.identifiers import BlindIndex
from charter.vault.people import active_owner_id, owner_of, visitors


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
    signer: ReceiptSigner,
    *,
    actor: str,
    person_id: str,
    choices: Mapping[str, bool],
    method: Method,
    gpc: bool = False,
    receipts: Sequence[str] = (),
) -> PersonChoices:
    """Record the choices of the person behind `person_id`, refused if they were erased or
    objected; they govern the very next decision. A consent receipt counts only for the
    person it was issued to (or the user that visitor became)."""
    owner = active_owner_id(session, person_id)
    opened = [signer.open(token, clock) for token in receipts]
    for claims in opened:
        if active_owner_id(session, claims.person_id) != owner:
            raise ReceiptRefused(
                "the consent receipt was issued to someone else", code="receipt_not_for_person"
            )
    in_force = set_choices(
        session,
        clock,
        policy,
        actor=actor,
        person_id=owner,
        choices=choices,
        method=method,
        gpc=gpc,
        receipts=opened,
    )
    return PersonChoices(owner, in_force.current)


def read_choices(
    session: Session,
    clock: Clock,
    *,
    actor: str,
    person_id: str,
    history_after: int = 0,
    history_limit: int = 100,
) -> PersonChoices:
    """The choices in force of the person behind `person_id`, with a page of their history
    (after the entry `history_after`); the read is recorded like any read of personal data.
    Gone for an erased person."""
    owner = owner_of(session, person_id)
    if owner.erased_at is not None:
        raise Gone("the person was erased", code="person_erased")
    found = PersonChoices(
        owner.id,
        current_choices(session, owner.id).current,
        tuple(choice_history(session, owner.id, after=history_after, limit=history_limit)),
    )
    record(
        session,
        clock,
        Event(
            actor,
            "consent:choices:read",
            f"person:{owner.id}",
            details={"current": len(found.current), "history": len(found.history)},
        ),
    )
    return found


@dataclass(frozen=True)
class IssuedReceipt:
    token: str
    topic: str
    expires_at: dt.datetime


def issue_consent_receipt(
    session: Session,
    clock: Clock,
    policy: CompiledPolicy,
    index: BlindIndex,
    signer: ReceiptSigner,
    *,
    visitor_id: str,
    topic: str,
    policy_version: str,
) -> IssuedReceipt:
    """A receipt of the person behind a browser's visitor cookie, saying yes to `topic`
    after being shown the text of `policy_version`, for a service to forward (see
    `consent.receipts`). The visitor is known from then on, if they were not."""
    if topic not in topics(policy):
        raise Unprocessable(f"'{topic}' is not a choice the policy offers", code="unknown_choice")
    if policy_version != policy.version:
        raise Conflict(
            f"the text shown was of policy version {policy_version}; the policy in force is "
            f"{policy.version}: show it again",
            code="policy_version_changed",
        )
    person_id = visitors(session, clock, index, [visitor_id])[visitor_id]
    owner = active_owner_id(session, person_id)
    token, claims = signer.issue(clock, person_id=owner, topic=topic, policy_version=policy_version)
    record(
        session,
        clock,
        Event(
            "public",
            "consent:receipt:issued",
            f"person:{owner}",
            details={"topic": topic, "receipt": claims.receipt_id},
        ),
    )
    return IssuedReceipt(token, topic, claims.expires_at)
