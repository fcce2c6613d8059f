"""Shine the Light (Cal. Civ. Code §1798.83, C25): what OMNI disclosed of a person's data in
a calendar year to affiliates and third parties for their own direct marketing, and the
answer to a request for it.

The report is read from the ledger alone: the rows of `disclosed_people` the guard marked
`shine_the_light` (a disclosure to a recipient the policy marks `direct_marketing`, for a
purpose that is not the service's own), joined to their disclosures of that year, grouped
by recipient and categories in SQL. It names categories by the policy's labels and
recipients by their declared name, postal address and nature of business; it holds no
personal value. A person Charter does not know gets neither a report nor the statement that
nothing was disclosed: only that no record is linked to them. The statute asks for one
answer a year: a second request of the same person for the same year is answered by
referring to the first.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import String, cast, func, select
from sqlalchemy.orm import Session

from charter.clock import Clock
from charter.db import table_of
from charter.disclosures.models import DisclosedPerson, Disclosure
from charter.errors import Conflict, NotFound
from charter.mail.outbox import Outbox, queue_message
from charter.mail.rendering import MailTemplate
from charter.policy.compiled import CompiledPolicy
from charter.requests.models import RightsRequest
from charter.requests.service import answer, get_request
from charter.vault.models import Person
from charter.vault.people import household, owner_of

REQUEST_TYPE = "shine_the_light"
REPORT_MAIL = MailTemplate("charter.requests", "stl_report")

_DISCLOSURES = table_of(Disclosure)
_LEDGER = table_of(DisclosedPerson)
_PEOPLE = table_of(Person)
# Compared as text: on PostgreSQL a `json` column has no equality to group by; the text is
# the one SQLAlchemy wrote (`categories` is stored sorted), so equal lists group together.
_CATEGORIES_TEXT = cast(_DISCLOSURES.c.categories, String)


@dataclass(frozen=True)
class StlRecipient:
    """A recipient of the report, as the policy declares it, and what it received."""

    name: str
    postal_address: str
    nature_of_business: str
    # The labels of the categories it received that year, sorted.
    categories: tuple[str, ...]

    def as_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "postal_address": self.postal_address,
            "nature_of_business": self.nature_of_business,
            "categories": list(self.categories),
        }


@dataclass(frozen=True)
class StlReport:
    """The Shine the Light report of one person and calendar year.

    `person_known` False: Charter holds no people row for them, and the report can say
    neither what was disclosed nor that nothing was. `no_disclosures` True only for a
    person it knows whose data went to nobody for direct marketing that year."""

    year: int
    # The owner of the data (a visitor who signed up is the user they became), if known.
    person_id: str | None
    person_known: bool
    # The labels of every category disclosed for direct marketing that year, sorted.
    categories: tuple[str, ...]
    # Sorted by name.
    recipients: tuple[StlRecipient, ...]
    # How many ledger rows of the person the report covers.
    disclosures: int

    @classmethod
    def unknown(cls, year: int) -> StlReport:
        """The report for someone Charter holds no record of."""
        return cls(year, None, person_known=False, categories=(), recipients=(), disclosures=0)

    @property
    def no_disclosures(self) -> bool:
        return self.person_known and self.disclosures == 0

    def as_json(self) -> dict[str, object]:
        return {
            "year": self.year,
            "person_id": self.person_id,
            "person_known": self.person_known,
            "no_disclosures": self.no_disclosures,
            "disclosures": self.disclosures,
            "categories": list(self.categories),
            "recipients": [recipient.as_json() for recipient in self.recipients],
        }


@dataclass(frozen=True)
class StlAnswer:
    """How a Shine the Light request was answered: the request, now closed; the report
    mailed (None when the answer refers to an earlier one); the outbox row of the message."""

    request: RightsRequest
    report: StlReport | None
    message: str
    # The earlier request of the same person and year this one was answered by referring to.
    referred_to: RightsRequest | None = None

    def as_json(self) -> dict[str, Any]:
        referred = self.referred_to
        return {
            "request_id": self.request.id,
            "state": self.request.state,
            "response": self.request.response,
            "report": self.report.as_json() if self.report is not None else None,
            "referred_to": {
                "request_id": referred.id,
                "answered_at": referred.closed_at.isoformat() if referred.closed_at else None,
            }
            if referred is not None
            else None,
            "message": self.message,
        }


def year_bounds(year: int) -> tuple[dt.datetime, dt.datetime]:
    """The calendar year `year` in UTC: from 1 January (included) to the next (excluded)."""
    return dt.datetime(year, 1, 1, tzinfo=dt.UTC), dt.datetime(year + 1, 1, 1, tzinfo=dt.UTC)


def shine_the_light_report(
    session: Session, policy: CompiledPolicy, *, person_id: str | None, year: int
) -> StlReport:
    """The disclosures of the person's data in calendar `year` (UTC) to affiliates and third
    parties for their own direct marketing: the categories, and each recipient's name,
    postal address and nature of business from the policy. A visitor merged into a user is
    the user, and the user's report covers the visitors' rows from before the merge. One
    query on the ledger, by `disclosed_people.person_id`."""
    owner = _owner(session, person_id)
    if owner is None:
        return StlReport.unknown(year)
    return _report(session, policy, owner, household(session, owner), year)


def _owner(session: Session, person_id: str | None) -> str | None:
    """The id of the person whose data `person_id` names, or None if Charter knows nobody."""
    if person_id is None:
        return None
    try:
        return owner_of(session, person_id).id
    except NotFound:
        return None


def _report(
    session: Session, policy: CompiledPolicy, owner: str, members: list[str], year: int
) -> StlReport:
    start, end = year_bounds(year)
    rows = session.execute(
        select(_DISCLOSURES.c.recipient, _CATEGORIES_TEXT, func.count())
        .select_from(_LEDGER.join(_DISCLOSURES, _DISCLOSURES.c.id == _LEDGER.c.disclosure_id))
        .where(
            _LEDGER.c.person_id.in_(members),
            _LEDGER.c.shine_the_light.is_(True),
            _DISCLOSURES.c.at >= start,
            _DISCLOSURES.c.at < end,
        )
        .group_by(_DISCLOSURES.c.recipient, _CATEGORIES_TEXT)
    ).all()
    leaves_of: defaultdict[str, set[str]] = defaultdict(set)
    count = 0
    for recipient, categories, disclosed in rows:
        leaves_of[recipient].update(json.loads(categories))
        count += int(disclosed)
    labels = {category.id: category.label for category in policy.policy.categories}
    recipients = []
    for recipient_id, leaves in leaves_of.items():
        declared = policy.recipients.get(recipient_id)
        if declared is None:
            # The statute asks for the recipient's name and address; a report without them
            # would be wrong, not merely short.
            raise Conflict(
                f"the ledger names a recipient the policy no longer declares ({recipient_id}); "
                "the report needs its name and address",
                code="recipient_not_declared",
            )
        recipients.append(
            StlRecipient(
                declared.name,
                declared.postal_address,
                declared.nature_of_business,
                tuple(sorted({labels.get(leaf, leaf) for leaf in leaves})),
            )
        )
    recipients.sort(key=lambda recipient: (recipient.name, recipient.postal_address))
    every = sorted({label for recipient in recipients for label in recipient.categories})
    return StlReport(
        year,
        owner,
        person_known=True,
        categories=tuple(every),
        recipients=tuple(recipients),
        disclosures=count,
    )


def answer_shine_the_light(
    session: Session,
    clock: Clock,
    policy: CompiledPolicy,
    outbox: Outbox,
    *,
    request_id: str,
    actor: str,
    address: str,
) -> StlAnswer:
    """Answer a verified Shine the Light request: its report of `report_year` (or the
    statement that nothing was disclosed, or that no record is linked to the person) queued
    to `address` as text and HTML, and the request closed, in the session's transaction.
    The statute asks for one answer a year: when an earlier request of the same person for
    the same year was answered, this one is answered by a message that refers to it. An
    unverified request is refused (`not_verified`) and nothing is queued."""
    request = get_request(session, request_id, for_update=True)
    if request.type != REQUEST_TYPE:
        raise Conflict("the request is not a Shine the Light request", code="not_shine_the_light")
    year = request.report_year
    if year is None:  # pragma: no cover - every Shine the Light request has its year
        raise Conflict("the request names no year to report", code="no_report_year")
    owner = _owner(session, request.person_id)
    report: StlReport | None = None
    earlier: RightsRequest | None = None
    if owner is None:
        report = StlReport.unknown(year)
    else:
        # Two requests of the same person answered at once: the second waits for the first
        # to commit, then finds it and refers to it (PostgreSQL; SQLite has one writer).
        session.execute(select(_PEOPLE.c.id).where(_PEOPLE.c.id == owner).with_for_update())
        members = household(session, owner)
        earlier = _earlier_answer(session, members, year, request.id)
        if earlier is None:
            report = _report(session, policy, owner, members, year)
    # Closed first: `answer` refuses an unverified request before anything is queued.
    closed = answer(session, clock, request.id, actor=actor, response=_response(report, earlier))
    message = queue_message(
        session,
        clock,
        outbox,
        to=address,
        template=REPORT_MAIL,
        context=_mail_context(policy, year, report, earlier),
        idempotency_key=f"request:{request.id}:answer",
        person_id=owner,
    )
    return StlAnswer(closed, report, message, referred_to=earlier)


def _earlier_answer(
    session: Session, members: list[str], year: int, request_id: str
) -> RightsRequest | None:
    """The first answered Shine the Light request of these people for `year`, if any."""
    return session.scalars(
        select(RightsRequest)
        .where(
            RightsRequest.person_id.in_(members),
            RightsRequest.type == REQUEST_TYPE,
            RightsRequest.report_year == year,
            RightsRequest.state == "answered",
            RightsRequest.id != request_id,
        )
        .order_by(RightsRequest.closed_at, RightsRequest.id)
        .limit(1)
    ).first()


def _answered_on(request: RightsRequest) -> str:
    closed = request.closed_at
    return closed.date().isoformat() if closed is not None else "an earlier date"


def _response(report: StlReport | None, earlier: RightsRequest | None) -> str:
    """What the request record says of its answer: counts and dates, no personal value."""
    if earlier is not None:
        return (
            f"answered by referring to request {earlier.id}, answered on "
            f"{_answered_on(earlier)}: one answer a calendar year"
        )
    if report is None or not report.person_known:
        return "no record linked to the requester: no report could be made"
    if report.no_disclosures:
        return f"no disclosures for direct marketing in {report.year}: statement sent"
    return (
        f"report for {report.year} sent: {len(report.categories)} categories, "
        f"{len(report.recipients)} recipients"
    )


def _mail_context(
    policy: CompiledPolicy, year: int, report: StlReport | None, earlier: RightsRequest | None
) -> dict[str, Any]:
    organisation = policy.policy.organisation
    if earlier is not None:
        answer_kind = "referred"
    elif report is None or not report.person_known:
        answer_kind = "unknown"
    elif report.no_disclosures:
        answer_kind = "none"
    else:
        answer_kind = "report"
    return {
        "answer": answer_kind,
        "year": year,
        "business": organisation.short_name,
        "signature": organisation.legal_name,
        "contact": organisation.contact_email,
        "answered_on": _answered_on(earlier) if earlier is not None else "",
        "categories": list(report.categories) if report is not None else [],
        "recipients": [r.as_json() for r in report.recipients] if report is not None else [],
    }
