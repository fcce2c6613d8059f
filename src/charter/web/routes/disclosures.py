"""Disclosures: `POST /v1/disclosures` records one, guarded by the policy; `GET
/v1/disclosures` and `GET /v1/people/{id}/disclosures` read the ledger (C21, C22, C24)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from charter.db import column_length
from charter.disclosures.guards import DisclosureRequest
from charter.disclosures.ledger import (
    PersonDisclosures,
    RecordedDisclosure,
    disclosures,
    read_person_disclosures,
    record_disclosure,
    requester_of,
)
from charter.disclosures.models import Disclosure
from charter.staff.service import Actor
from charter.web.auth import FORM_BODY_BYTES, Permit
from charter.web.contract import refusals
from charter.web.deps import PolicyDep, ReadSession, RuntimeDep
from charter.web.params import PersonId, PersonInPath, StaffName
from charter.web.units import bulk_write_unit, write_unit

router = APIRouter(prefix="/v1", tags=["disclosures"])
# Up to 10,000 ids of up to 32 characters each, quoted and separated: under 2 MiB.
Discloser = Annotated[Actor, Depends(Permit("disclosures:make", body_bytes=FORM_BODY_BYTES))]
Reader = Annotated[Actor, Depends(Permit("disclosures:read"))]
Name = Annotated[str, Field(min_length=1, max_length=64)]
# The most people one request names; a larger selection is sent in several requests.
MAX_PEOPLE = 10_000
# Past this many people, a disclosure's work (a decision per person) is long enough to run
# in the thread pool rather than on the event loop (web/units.py).
BULK_PEOPLE = 100
# The most exclusions an answer lists; the counts cover them all.
MAX_EXCLUSIONS_SHOWN = 1000


class DisclosureBody(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "recipient": "cloud_hosting",
                    "purpose": "service_support",
                    "categories": ["contact.email"],
                    "people": ["<person id, as POST /v1/collect returned it>"],
                    "idempotency_key": "disclosure-2026-12-01-0001",
                }
            ]
        },
    )

    recipient: Name = Field(description="A recipient of the policy (`GET /v1/policy`).")
    purpose: Name = Field(description="The purpose the recipient receives the data for.")
    categories: Annotated[list[Name], Field(min_length=1, max_length=100)] = Field(
        description="Categories (`contact.email`) or groups (`contact`) declared for both."
    )
    people: Annotated[list[PersonId], Field(min_length=1, max_length=MAX_PEOPLE)] = Field(
        description="The ids of the people whose data is disclosed."
    )
    idempotency_key: Annotated[
        str, Field(min_length=1, max_length=column_length(Disclosure, "idempotency_key"))
    ] = Field(description="The same key sent again gets the first answer; nothing is recorded.")
    country: Annotated[str, Field(min_length=2, max_length=2)] | None = Field(
        default=None, description="Where the data goes (ISO 3166-1 alpha-2); the recipient's own."
    )
    ground: Name | None = Field(
        default=None, description="A transfer ground of the policy, where one is needed."
    )
    legal_process: (
        Annotated[str, Field(min_length=1, max_length=column_length(Disclosure, "legal_process"))]
        | None
    ) = Field(
        default=None,
        description="The reference of the subpoena, court order or other legal request.",
    )
    approver: StaffName | None = Field(
        default=None, description="The handle of the privacy officer who approved it."
    )
    for_recipients_own_purposes: bool = Field(
        default=False, description="The recipient will use the data for its own purposes."
    )
    mode: Literal["record"] = Field(
        default="record", description="`record`: record the disclosure (no values returned)."
    )


class Exclusion(BaseModel):
    person_id: str
    code: str = Field(description="Why this person was left out, as a stable code.")


class DisclosureAnswer(BaseModel):
    disclosure_id: int
    requested: int = Field(description="Distinct person ids asked for.")
    disclosed: int = Field(description="People whose data was disclosed, recorded in the ledger.")
    excluded: int = Field(description="Person ids left out.")
    codes: dict[str, int] = Field(description="How many were left out for each reason.")
    exclusions: list[Exclusion] = Field(
        description=f"Who was left out and why: the first {MAX_EXCLUSIONS_SHOWN}."
    )
    exclusions_truncated: bool = Field(description="More were left out than `exclusions` shows.")
    replayed: bool = Field(description="The answer to an earlier request with the same key.")


class LedgerEntryOut(BaseModel):
    id: int
    at: str = Field(description="When, in UTC (ISO 8601, `Z`).")
    recipient: str
    purpose: str
    categories: list[str] = Field(description="The categories disclosed.")
    country: str | None
    ground: str | None
    legal_process: str | None
    approver_id: int | None = Field(description="The staff id of the approver, if any.")
    requester: str = Field(description="Who asked, as the audit log names them.")
    policy_version: str
    mode: str
    requested: int
    disclosed: int
    excluded: int


class LedgerPage(BaseModel):
    disclosures: list[LedgerEntryOut]
    next: int | None = Field(description="`after` for the next page; null on the last.")


class PersonLedgerPage(LedgerPage):
    person_id: str = Field(description="Whose data: the user a visitor became, if so.")


def _answer(recorded: RecordedDisclosure) -> dict[str, Any]:
    return {
        "disclosure_id": recorded.id,
        "requested": recorded.requested,
        "disclosed": recorded.disclosed,
        "excluded": recorded.excluded,
        "codes": recorded.codes(),
        "exclusions": [
            {"person_id": person, "code": code}
            for person, code in recorded.exclusions[:MAX_EXCLUSIONS_SHOWN]
        ],
        "exclusions_truncated": recorded.excluded > MAX_EXCLUSIONS_SHOWN,
        "replayed": recorded.replayed,
    }


@router.post(
    "/disclosures",
    status_code=201,
    response_model=DisclosureAnswer,
    responses=refusals(
        409,
        422,
        _409="The idempotency key was used for another disclosure (`idempotency_key_reused`).",
        _422="The policy refuses the disclosure, audited, nothing recorded "
        "(`recipient_not_declared`, `purpose_not_for_recipient`, `category_not_for_recipient`, "
        "`never_sold`, `legal_process_required`, `approval_required`, `approver_is_requester`, "
        "`transfer_ground_required`, `unknown_transfer_ground`, "
        "`business_transfer_to_non_acquirer`); or an unknown approver (`approver_not_found`) "
        "or country (`invalid_country`).",
    ),
)
async def post_disclosure(
    actor: Discloser, body: DisclosureBody, *, policy: PolicyDep, runtime: RuntimeDep
) -> dict[str, Any]:
    """Guard the disclosure once, decide each person by their own state, and record one
    ledger row per person disclosed, audited in the same transaction. People left out (opted
    out, GPC, erased, unknown id, ...) are counted and listed with their reason."""
    request = DisclosureRequest(
        recipient=body.recipient,
        purpose=body.purpose,
        categories=tuple(body.categories),
        requester=requester_of(actor),
        country=body.country,
        ground=body.ground,
        legal_process=body.legal_process,
        for_recipients_own_purposes=body.for_recipients_own_purposes,
    )

    def disclose(session: Session) -> RecordedDisclosure:
        return record_disclosure(
            session,
            runtime.clock,
            policy,
            actor=actor,
            request=request,
            people=body.people,
            idempotency_key=body.idempotency_key,
            approver=body.approver,
            mode=body.mode,
        )

    unit = bulk_write_unit if len(body.people) > BULK_PEOPLE else write_unit
    return _answer(await unit(runtime, disclose))


Limit = Annotated[int, Query(ge=1, le=1000)]
After = Annotated[int, Query(ge=0, le=2**31 - 1, description="The `next` of the page before.")]


@router.get("/disclosures", response_model=LedgerPage)
def list_disclosures(
    _: Reader,
    session: ReadSession,
    *,
    recipient: Annotated[str | None, Query(max_length=64)] = None,
    purpose: Annotated[str | None, Query(max_length=64)] = None,
    ground: Annotated[str | None, Query(max_length=64)] = None,
    person: Annotated[
        str | None, Query(max_length=32, description="Only disclosures of this person's data.")
    ] = None,
    since: Annotated[AwareDatetime | None, Query(description="From this time on.")] = None,
    until: Annotated[AwareDatetime | None, Query(description="Before this time.")] = None,
    after: After = 0,
    limit: Limit = 100,
) -> dict[str, Any]:
    """The ledger of disclosures, oldest first, `limit` at a time, filtered."""
    filters: dict[str, str | dt.datetime | None] = {
        "recipient": recipient,
        "purpose": purpose,
        "ground": ground,
        "person": person,
        "since": since,
        "until": until,
    }
    entries = disclosures(session, filters=filters, after=after, limit=limit)
    return {
        "disclosures": [entry.as_json() for entry in entries],
        "next": entries[-1].id if len(entries) == limit else None,
    }


@router.get(
    "/people/{person_id}/disclosures",
    response_model=PersonLedgerPage,
    responses=refusals(404, _404="No such person (`person_not_found`)."),
)
async def list_person_disclosures(
    actor: Reader,
    person_id: PersonInPath,
    *,
    runtime: RuntimeDep,
    after: After = 0,
    limit: Limit = 100,
) -> dict[str, Any]:
    """The disclosures of the person's data, oldest first, `limit` at a time; a visitor who
    signed up is the user they became. The read is audited."""

    def read(session: Session) -> PersonDisclosures:
        return read_person_disclosures(
            session, runtime.clock, actor=actor.ref, person_id=person_id, after=after, limit=limit
        )

    found = await write_unit(runtime, read)
    return {
        "person_id": found.person_id,
        "disclosures": [entry.as_json() for entry in found.entries],
        "next": found.entries[-1].id if len(found.entries) == limit else None,
    }
