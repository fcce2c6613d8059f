"""Disclosures: `POST /v1/disclosures` records one, guarded by the policy; `GET
/v1/disclosures` and `GET /v1/people/{id}/disclosures` read the ledger (C21, C22, C24)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from charter.db import column_length, column_max
from charter.disclosures.guards import DisclosureRequest
from charter.disclosures.ledger import (
    EXCLUSIONS_SHOWN,
    MAX_DELIVERED,
    PersonDisclosures,
    RecordedDisclosure,
    disclosure_exists,
    disclosures,
    exclusions_page,
    export_ledger,
    read_person_disclosures,
    record_disclosure,
    record_export,
    requester_of,
)
from charter.disclosures.models import Disclosure, DisclosureExclusion
from charter.errors import NotFound
from charter.staff.service import Actor
from charter.web.auth import FORM_BODY_BYTES, Permit
from charter.web.contract import refusals
from charter.web.deps import PolicyDep, ReadSession, RuntimeDep
from charter.web.params import PersonId, PersonInPath, QueryTime, StaffName
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
    people: Annotated[list[PersonId], Field(max_length=MAX_PEOPLE)] = Field(
        default_factory=list,
        description=f"The ids of the people whose data is disclosed (up to {MAX_PEOPLE:,}); "
        "or name a `selection`.",
    )
    selection: Annotated[str, Field(min_length=1, max_length=32)] | None = Field(
        default=None,
        description="A selection of up to 1,000,000 people (`POST /v1/disclosures/selections`)"
        ", in place of `people`; the disclosure uses it up.",
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
    mode: Literal["record", "deliver"] = Field(
        default="record",
        description="`record`: record the disclosure, no values returned; `deliver`: also "
        f"return the values of the people disclosed (up to {MAX_DELIVERED:,} people).",
    )


class Exclusion(BaseModel):
    person_id: str
    code: str = Field(description="Why this person was left out, as a stable code.")


class DeliveredValue(BaseModel):
    category: str
    field: str
    collection_point: str
    value: str = Field(description="The value, decrypted for the recipient.")
    collected_at: str
    source: str
    source_name: str | None


class DeliveredPersonOut(BaseModel):
    person_id: str = Field(description="The person disclosed (the user a visitor became).")
    values: list[DeliveredValue]


class DisclosureAnswer(BaseModel):
    disclosure_id: int
    requested: int = Field(description="Distinct person ids asked for.")
    disclosed: int = Field(description="People whose data was disclosed, recorded in the ledger.")
    excluded: int = Field(description="Person ids left out.")
    codes: dict[str, int] = Field(description="How many were left out for each reason.")
    exclusions: list[Exclusion] = Field(
        description=f"Who was left out and why: the first {EXCLUSIONS_SHOWN:,} "
        "(`GET /v1/disclosures/{id}/exclusions` pages through them all)."
    )
    exclusions_truncated: bool = Field(description="More were left out than `exclusions` shows.")
    replayed: bool = Field(description="The answer to an earlier request with the same key.")
    delivered: list[DeliveredPersonOut] = Field(
        description="`deliver`: each person disclosed, with their values; empty for `record`."
    )
    unreadable: int = Field(description="`deliver`: values that did not decrypt, left out.")


class ExclusionPage(BaseModel):
    exclusions: list[Exclusion]
    next: int | None = Field(description="`after` for the next page; null on the last.")


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
        "codes": recorded.codes,
        "exclusions": [{"person_id": person, "code": code} for person, code in recorded.exclusions],
        "exclusions_truncated": recorded.excluded > len(recorded.exclusions),
        "replayed": recorded.replayed,
        "delivered": [
            {"person_id": person.person_id, "values": [v.as_json() for v in person.values]}
            for person in recorded.delivered
        ],
        "unreadable": recorded.unreadable,
    }


@router.post(
    "/disclosures",
    status_code=201,
    response_model=DisclosureAnswer,
    responses=refusals(
        404,
        409,
        422,
        _404="No selection of yours with that id (`selection_not_found`).",
        _409="The idempotency key was used for another disclosure (`idempotency_key_reused`); "
        "the selection was used (`selection_used`).",
        _422="The policy refuses the disclosure, audited, nothing recorded "
        "(`recipient_not_declared`, `purpose_not_for_recipient`, `category_not_for_recipient`, "
        "`never_sold`, `legal_process_required`, `approval_required`, `approver_is_requester`, "
        "`transfer_ground_required`, `unknown_transfer_ground`, "
        "`business_transfer_to_non_acquirer`); or an unknown approver (`approver_not_found`) "
        "or country (`invalid_country`); no people or both people and a selection "
        "(`no_people`, `people_and_selection`); a delivery of too many people "
        "(`delivery_too_large`).",
    ),
)
async def post_disclosure(
    actor: Discloser, body: DisclosureBody, *, policy: PolicyDep, runtime: RuntimeDep
) -> dict[str, Any]:
    """Guard the disclosure once, decide each person by their own state, and record one
    ledger row per person disclosed, audited in the same transaction. People left out (opted
    out, GPC, erased, unknown id, ...) are counted and listed with their reason. `deliver`
    also returns the values of the people disclosed, decrypted for the recipient."""
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
            selection=body.selection,
            idempotency_key=body.idempotency_key,
            approver=body.approver,
            mode=body.mode,
            keys=runtime.keys,
        )

    large = body.selection is not None or len(body.people) > BULK_PEOPLE
    recorded = await (bulk_write_unit if large else write_unit)(runtime, disclose)
    # The refusal's audit entry is committed with the unit; the caller hears why.
    recorded.raise_if_refused()
    return _answer(recorded)


Limit = Annotated[int, Query(ge=1, le=1000)]
MAX_DISCLOSURE_ID = column_max(Disclosure, "id")
After = Annotated[
    int, Query(ge=0, le=MAX_DISCLOSURE_ID, description="The `next` of the page before.")
]


@dataclass
class LedgerFilters:
    """The filters of the ledger's reads, as query parameters."""

    recipient: Annotated[str | None, Query(max_length=64)] = None
    purpose: Annotated[str | None, Query(max_length=64)] = None
    ground: Annotated[str | None, Query(max_length=64)] = None
    person: Annotated[
        str | None, Query(max_length=32, description="Only disclosures of this person's data.")
    ] = None
    since: Annotated[QueryTime | None, Query(description="From this time on.")] = None
    until: Annotated[QueryTime | None, Query(description="Before this time.")] = None

    def as_dict(self) -> dict[str, str | dt.datetime | None]:
        return dataclasses.asdict(self)


@router.get("/disclosures", response_model=LedgerPage)
def list_disclosures(
    _: Reader,
    session: ReadSession,
    *,
    filters: Annotated[LedgerFilters, Depends()],
    after: After = 0,
    limit: Limit = 100,
) -> dict[str, Any]:
    """The ledger of disclosures, oldest first, `limit` at a time, filtered."""
    entries = disclosures(session, filters=filters.as_dict(), after=after, limit=limit)
    return {
        "disclosures": [entry.as_json() for entry in entries],
        "next": entries[-1].id if len(entries) == limit else None,
    }


@router.get(
    "/disclosures/export",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"application/x-ndjson": {"schema": {"type": "string"}}},
            "description": "One JSON object a line: each disclosure (`kind`: `disclosure`) "
            "and, with `people=true`, each person it disclosed (`kind`: `person`).",
        }
    },
)
async def export_disclosures(
    actor: Reader,
    *,
    runtime: RuntimeDep,
    filters: Annotated[LedgerFilters, Depends()],
    people: Annotated[
        bool, Query(description="Also a line per person disclosed, after each disclosure.")
    ] = False,
) -> StreamingResponse:
    """The ledger as NDJSON, oldest first, filtered like `GET /v1/disclosures`; read a
    page at a time, so an export of any size holds no transaction open. Audited."""
    chosen = filters.as_dict()

    def audit(session: Session) -> None:
        record_export(session, runtime.clock, actor=actor.ref, filters=chosen, people=people)

    await write_unit(runtime, audit)
    lines = export_ledger(runtime.db.reading, filters=chosen, people=people)
    return StreamingResponse(_ndjson(lines), media_type="application/x-ndjson")


def _ndjson(lines: Iterator[dict[str, object]], *, per_chunk: int = 1000) -> Iterator[str]:
    """The lines as NDJSON, `per_chunk` lines a chunk: each chunk is one hop to the thread
    that reads the ledger, not each line."""
    chunk: list[str] = []
    for line in lines:
        chunk.append(json.dumps(line, separators=(",", ":")))
        if len(chunk) == per_chunk:
            yield "\n".join(chunk) + "\n"
            chunk = []
    if chunk:
        yield "\n".join(chunk) + "\n"


@router.get(
    "/disclosures/{disclosure_id}/exclusions",
    response_model=ExclusionPage,
    responses=refusals(404, _404="No disclosure with that id (`disclosure_not_found`)."),
)
def list_exclusions(
    _: Reader,
    disclosure_id: Annotated[int, Path(ge=1, le=MAX_DISCLOSURE_ID)],
    session: ReadSession,
    *,
    after: Annotated[
        int,
        Query(
            ge=0,
            le=column_max(DisclosureExclusion, "position"),
            description="The `next` of the page before.",
        ),
    ] = 0,
    limit: Limit = 1000,
) -> dict[str, Any]:
    """Every person id the disclosure left out, and why, in the order they were asked for,
    `limit` at a time."""
    if not disclosure_exists(session, disclosure_id):
        raise NotFound("no disclosure with that id", code="disclosure_not_found")
    page = exclusions_page(session, disclosure_id, start=after, limit=limit)
    return {
        "exclusions": [{"person_id": person, "code": code} for person, code in page],
        "next": after + len(page) if len(page) == limit else None,
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
