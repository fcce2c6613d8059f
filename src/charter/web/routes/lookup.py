"""`POST /v1/people/lookup`: the people an e-mail address belongs to, for staff who answer
rights requests. A `POST`, so that the address travels in the body and never in a URL, where
access logs and proxies would keep it.

The route is `async` and runs its unit of work where it costs least (web/units.py), as the
choices routes do: the look-up writes its audit entry.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from charter.staff.service import Actor
from charter.vault.lookup import FoundPerson, find_people_by_email
from charter.web.auth import Permit
from charter.web.deps import PolicyDep, RuntimeDep
from charter.web.units import write_unit

router = APIRouter(prefix="/v1/people", tags=["people"])
LookUp = Annotated[Actor, Depends(Permit("people:lookup"))]


class LookupBody(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"email": "ines@example.com"}]}
    )

    email: str = Field(
        description=(
            "The e-mail address a request came from or names. Matched as Charter stores "
            "addresses: letter case, surrounding space and invisible characters do not count."
        ),
        examples=["ines@example.com"],
    )


class PersonFound(BaseModel):
    person_id: str = Field(description="The person's opaque id, as the other routes take it.")
    kind: str = Field(
        description="What kind of data subject they are: user, visitor, job_applicant, "
        "correspondent."
    )


class PeopleFound(BaseModel):
    people: list[PersonFound] = Field(
        description="Everyone not erased whom the address belongs to, users first; empty if nobody."
    )


@router.post("/lookup", summary="Find people by e-mail")
async def lookup(
    actor: LookUp, body: LookupBody, runtime: RuntimeDep, policy: PolicyDep
) -> PeopleFound:
    """Find the people behind an e-mail address, so that a request to know, delete or correct
    personal information reaches the person it is about. Erased people are not found. An
    address nobody is known by is answered 200 with an empty list: finding nobody is an
    answer, not a missing resource. The look-up is audited, without the address."""

    def find(session: Session) -> list[FoundPerson]:
        return find_people_by_email(
            session, runtime.clock, policy, runtime.index, actor=actor, email=body.email
        )

    found = await write_unit(runtime, find)
    return PeopleFound(people=[PersonFound(person_id=p.person_id, kind=p.kind) for p in found])
