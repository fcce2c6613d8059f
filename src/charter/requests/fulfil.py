"""Doing what a verified request asks: the categories a person's data falls in (know), their
erasure (delete), their opt-out of sale and sharing, each answered and audited.

The answer of a request whose person Charter does not know is what the law expects once
the request is verified: "no personal information found", never an error.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from charter.audit.chain import Event, record
from charter.clock import Clock
from charter.consent.choices import set_choices
from charter.db import Database
from charter.disclosures.guards import ADVERTISING_KINDS
from charter.disclosures.models import DisclosedPerson, Disclosure
from charter.errors import Conflict, Unprocessable
from charter.mail.outbox import Outbox, queue_message
from charter.mail.rendering import MailTemplate
from charter.policy.compiled import CompiledPolicy
from charter.requests import service
from charter.requests.deadlines import in_words
from charter.requests.models import RightsRequest
from charter.requests.service import Replies
from charter.requests.shine_the_light import answer_shine_the_light
from charter.vault.correction import correct_field
from charter.vault.erasure import erase_person
from charter.vault.keystore import KeyStore
from charter.vault.models import Record
from charter.vault.people import household

# The types `fulfil` carries out; `know_specific` is answered by staff for now.
FULFILLED_TYPES = (
    "shine_the_light",
    "know_categories",
    "delete",
    "correct",
    "opt_out_sale_sharing",
)
NOTHING_FOUND = "no personal information found"
ANSWER_MAIL = MailTemplate("charter.requests", "request_answered")
# What an erasure keeps, and why (C23; the answer says so).
KEPT_ON_ERASURE = (
    "the audit log of what was done with the data, which names no value",
    "the ledger of disclosures (to whom, when, for what), which the law asks OMNI to account for",
    "this request's record, kept 24 months (11 CCR 7101)",
)


@dataclass(frozen=True)
class Fulfilled:
    """What was done, for the answer: `report` for a know request, `kept` for a deletion,
    `recipients` told of an opt-out or a deletion; `request` once closed."""

    request_id: str
    response: str
    report: dict[str, Any] = field(default_factory=dict)
    kept: tuple[str, ...] = ()
    recipients: tuple[str, ...] = ()
    request: RightsRequest | None = None
    # Whether the answer was queued to the address the request gave.
    mailed: bool = False


def fulfil(
    db: Database,
    keys: KeyStore,
    clock: Clock,
    policy: CompiledPolicy,
    *,
    request_id: str,
    actor: str,
    mail: tuple[Outbox, Replies] | None = None,
    value: str | None = None,
) -> Fulfilled:
    """Carry out the verified request `request_id` and answer it; with `mail`, the answer
    also goes to the address the request gave, queued in the answer's transaction. A
    correction takes the new `value` of the field the request names. A request that is not
    verified, or of a type this does not carry out, is refused and nothing is done."""
    with db.writing() as session:
        kind, person_id = _started(session, clock, request_id, actor)
        if kind == "shine_the_light":
            return _shine_the_light(session, clock, policy, request_id, actor=actor, mail=mail)
    if kind == "delete" and person_id is not None:
        # The erasure runs its own units (keys destroyed first; resumable after a crash).
        with db.reading() as session:
            told = _recipients_of(session, policy, person_id)
        receipt = erase_person(db, keys, clock, actor=actor, person_id=person_id)
        done = Fulfilled(
            request_id,
            f"erased: {receipt.records_deleted} records, {receipt.events_deleted} events; "
            f"{len(told)} recipients told",
            kept=KEPT_ON_ERASURE,
            recipients=told,
        )
        with db.writing() as session:
            _notify(session, clock, request_id=request_id, actor=actor, notice="deletion", to=told)
            return _answered(session, clock, done, actor=actor, mail=mail)
    with db.writing() as session:
        if person_id is None:
            done = Fulfilled(request_id, NOTHING_FOUND)
        elif kind == "correct":
            done = _correct(session, keys, clock, policy, request_id, actor=actor, value=value)
        elif kind == "know_categories":
            report = categories_report(session, policy, person_id)
            count = len(report["categories"])
            done = Fulfilled(request_id, f"categories report: {count} categories", report=report)
        else:
            told = _opt_out(
                session, clock, policy, request_id=request_id, actor=actor, person_id=person_id
            )
            done = Fulfilled(
                request_id,
                f"opt-out of sale and sharing recorded; {len(told)} recipients told",
                recipients=told,
            )
        return _answered(session, clock, done, actor=actor, mail=mail)


def _shine_the_light(
    session: Session,
    clock: Clock,
    policy: CompiledPolicy,
    request_id: str,
    *,
    actor: str,
    mail: tuple[Outbox, Replies] | None,
) -> Fulfilled:
    """The Shine the Light report of the request's year, mailed to the address it gave."""
    request = service.get_request(session, request_id, for_update=True)
    address = mail[1].open(request) if mail is not None else None
    if mail is None or address is None:
        raise Conflict(
            "a Shine the Light report is mailed: the request gave no address to answer",
            code="no_reply_address",
        )
    answered = answer_shine_the_light(
        session, clock, policy, mail[0], request_id=request_id, actor=actor, address=address
    )
    return Fulfilled(
        request_id,
        answered.request.response or "",
        report=answered.as_json(),
        request=answered.request,
        mailed=True,
    )


def _correct(
    session: Session,
    keys: KeyStore,
    clock: Clock,
    policy: CompiledPolicy,
    request_id: str,
    *,
    actor: str,
    value: str | None,
) -> Fulfilled:
    """Replace the field the request names by `value`. A request verified by a link mailed
    to the address it would correct is not verified by other data (11 CCR 7060): refused."""
    request = service.get_request(session, request_id)
    field = request.details.get("field")
    if not field or value is None or not value.strip():
        raise Unprocessable(
            "a correction names its field (in the request) and the new value",
            code="correction_incomplete",
        )
    if request.verification == "email_link" and field == "email":
        raise Conflict(
            "the request was verified by the address it would correct; verify it otherwise",
            code="verified_by_the_corrected_field",
        )
    if request.person_id is None:
        return Fulfilled(request_id, NOTHING_FOUND)
    corrected = correct_field(
        session,
        keys,
        clock,
        policy,
        actor=actor,
        person_id=request.person_id,
        field=str(field),
        value=value,
    )
    return Fulfilled(request_id, f"corrected: {corrected.field} ({corrected.replaced} replaced)")


def _started(session: Session, clock: Clock, request_id: str, actor: str) -> tuple[str, str | None]:
    """The type and person of the request, now in progress; refused unless verified."""
    request = service.get_request(session, request_id, for_update=True)
    if request.type not in FULFILLED_TYPES:
        raise Conflict(
            f"a {request.type.replace('_', ' ')} request is answered another way",
            code="not_fulfilled_here",
        )
    if request.state == "verified":
        service.start(session, clock, request_id, actor=actor)
    elif request.state != "in_progress" or request.verified_at is None:
        raise Conflict(
            f"the request is {request.state.replace('_', ' ')}: only a verified request "
            "is carried out",
            code="not_verified" if request.verified_at is None else "invalid_transition",
        )
    return request.type, request.person_id


def _answered(
    session: Session,
    clock: Clock,
    done: Fulfilled,
    *,
    actor: str,
    mail: tuple[Outbox, Replies] | None,
) -> Fulfilled:
    """Queue the answer to the request's address (if it gave one), then close it."""
    request = service.get_request(session, done.request_id, for_update=True)
    address = mail[1].open(request) if mail is not None else None
    if mail is not None and address is not None:
        queue_message(
            session,
            clock,
            mail[0],
            to=address,
            template=ANSWER_MAIL,
            context={
                "kind": in_words(request.type),
                "received": request.received_at.date().isoformat(),
                "response": done.response,
                "report": done.report or None,
                "kept": list(done.kept),
            },
            idempotency_key=f"request:{request.id}:answer",
            person_id=request.person_id,
        )
    closed = service.answer(session, clock, done.request_id, actor=actor, response=done.response)
    return dataclasses.replace(done, request=closed, mailed=address is not None)


def categories_report(session: Session, policy: CompiledPolicy, person_id: str) -> dict[str, Any]:
    """What a know (categories) answer tells: the categories of the person's data Charter
    holds, their sources, the purposes the policy uses them for, and the recipients the
    ledger shows they were disclosed to. Names from the policy; no value."""
    members = household(session, person_id)
    held = session.execute(
        select(Record.category, Record.source).where(Record.person_id.in_(members)).distinct()
    ).all()
    categories = sorted({category for category, _ in held})
    purposes = sorted(
        purpose.id
        for purpose in policy.policy.purposes
        if set(policy.purpose_categories.get(purpose.id, ())) & set(categories)
    )
    recipients = _recipients_of(session, policy, person_id)
    labels = {category.id: category.label for category in policy.policy.categories}
    return {
        "categories": [{"id": c, "label": labels.get(c, c)} for c in categories],
        "sources": sorted({source for _, source in held}),
        "purposes": purposes,
        "recipients": [
            {"id": r, "name": policy.recipients[r].name if r in policy.recipients else r}
            for r in recipients
        ],
    }


def _recipients_of(
    session: Session, policy: CompiledPolicy, person_id: str, *, kinds: frozenset[str] | None = None
) -> tuple[str, ...]:
    """The recipients the ledger shows the person's data went to (of `kinds`, if given)."""
    found = session.scalars(
        select(Disclosure.recipient)
        .join(DisclosedPerson, DisclosedPerson.disclosure_id == Disclosure.id)
        .where(DisclosedPerson.person_id == person_id)
        .distinct()
    )
    return tuple(
        sorted(
            recipient
            for recipient in found
            if kinds is None
            or (recipient in policy.recipients and policy.recipients[recipient].kind in kinds)
        )
    )


def _opt_out(
    session: Session,
    clock: Clock,
    policy: CompiledPolicy,
    *,
    request_id: str,
    actor: str,
    person_id: str,
) -> tuple[str, ...]:
    """Record the opt-out as the person's choice (method `request`), effective on the next
    decision; tell the advertisers that received their data."""
    set_choices(
        session,
        clock,
        policy,
        actor=actor,
        person_id=person_id,
        choices={f"purpose:{purpose}": False for purpose in sorted(policy.sale_or_sharing)},
        method="request",
    )
    recipients = _recipients_of(session, policy, person_id, kinds=ADVERTISING_KINDS)
    _notify(session, clock, request_id=request_id, actor=actor, notice="opt_out", to=recipients)
    return recipients


def _notify(
    session: Session,
    clock: Clock,
    *,
    request_id: str,
    actor: str,
    notice: str,
    to: tuple[str, ...],
) -> None:
    """Record the notice of a deletion or an opt-out to each recipient that received the
    person's data (the policy names recipients, not their addresses: the notice is recorded
    for OMNI's staff to pass on through each recipient's contract)."""
    if not to:
        return
    record(
        session,
        clock,
        Event(
            actor,
            f"requests:recipients:{notice}_notice",
            f"request:{request_id}",
            details={"recipients": list(to)},
        ),
    )
