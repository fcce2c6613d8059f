"""Uses of a person's data, decisions, and erasure."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from charter.access.decide import Decision
from charter.access.use import ask, use_personal_data
from charter.staff.service import Actor
from charter.vault.erasure import erase_person
from charter.web.auth import Permit
from charter.web.contract import ErrorBody, refusals
from charter.web.deps import PolicyDep, RuntimeDep
from charter.web.params import PersonId, PersonInPath

router = APIRouter(prefix="/v1", tags=["people"])
User = Annotated[Actor, Depends(Permit("people:use"))]
Asker = Annotated[Actor, Depends(Permit("decisions:ask"))]
Eraser = Annotated[Actor, Depends(Permit("people:erase"))]
Category = Annotated[str, Field(min_length=1, max_length=64)]


class UseBody(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"purpose": "identity_verification", "categories": ["contact.email"]}]
        },
    )

    purpose: Annotated[str, Field(min_length=1, max_length=64)] = Field(
        description="Why: one of the purposes of the policy."
    )
    categories: Annotated[list[Category], Field(min_length=1, max_length=100)] = Field(
        description="Which personal data: categories (`contact.email`) or a group (`contact`)."
    )


class PageOfUse(UseBody):
    limit: int = Field(
        default=1000, ge=1, le=10_000, description="At most this many stored values a page."
    )
    after: Annotated[str, Field(max_length=64)] | None = Field(
        default=None, description="The `next` of the page before; none for the first page."
    )


class DecisionBody(UseBody):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "person_id": "<person id, as POST /v1/collect returned it>",
                    "purpose": "identity_verification",
                    "categories": ["contact.email"],
                }
            ]
        },
    )

    person_id: PersonId


class DecisionOut(BaseModel):
    allowed: bool
    code: str = Field(description="`allowed`, or why not, as a stable code.")
    reason: str = Field(description="The decision in words.")


class UseValue(BaseModel):
    category: str
    field: str
    collection_point: str
    value: str = Field(description="The value, decrypted.")
    collected_at: str
    source: str = Field(description="`given`, `automatic` or `other_source`.")
    source_name: str | None


class UseAnswer(BaseModel):
    decision: DecisionOut
    values: list[UseValue]
    withheld: int = Field(description="Values the decision does not let this use see.")
    unreadable: int = Field(description="Values that do not decrypt where they are stored.")
    next: str | None = Field(description="`after` for the next page; null on the last.")


class UseRefusal(ErrorBody):
    decision: DecisionOut


class Erasure(BaseModel):
    person_id: str
    keys_destroyed: int
    records_deleted: int
    events_deleted: int


def _refusal(decision: Decision) -> JSONResponse:
    return JSONResponse(
        {
            "error": {"code": decision.code, "message": decision.reason},
            "decision": decision.as_json(),
        },
        status_code=403,
    )


@router.post(
    "/people/{person_id}/use",
    response_model=UseAnswer,
    responses={
        **refusals(
            404,
            410,
            422,
            _404="No such person (`person_not_found`).",
            _422="An `after` that is not a `next` this use could have answered (`invalid_cursor`).",
        ),
        403: {
            "model": UseRefusal,
            "description": "The use is refused, by the policy or by the person's choices: "
            "`decision` says why (or the key's role lacks `people:use`).",
        },
    },
)
def use(
    actor: User,
    person_id: PersonInPath,
    body: PageOfUse,
    *,
    runtime: RuntimeDep,
    policy: PolicyDep,
) -> Any:
    """Decide a use and, if allowed, return the values decrypted; 403 with the reason if not."""
    with runtime.db.writing() as session:
        result = use_personal_data(
            session,
            runtime.keys,
            runtime.clock,
            policy,
            actor=actor,
            person_id=person_id,
            purpose=body.purpose,
            categories=body.categories,
            limit=body.limit,
            after=body.after,
        )
        if not result.decision.allowed:
            return _refusal(result.decision)
        return {
            "decision": result.decision.as_json(),
            "values": [v.as_json() for v in result.values],
            "withheld": result.withheld,
            "unreadable": result.unreadable,
            "next": result.next,
        }


@router.post(
    "/decisions",
    response_model=DecisionOut,
    responses=refusals(404, _404="No such person (`person_not_found`)."),
)
def decisions(
    actor: Asker, body: DecisionBody, runtime: RuntimeDep, policy: PolicyDep
) -> dict[str, Any]:
    """Answer whether a use would be allowed, without returning any data."""
    with runtime.db.writing() as session:
        decision = ask(
            session,
            runtime.clock,
            policy,
            actor=actor,
            person_id=body.person_id,
            purpose=body.purpose,
            categories=body.categories,
        )
        return decision.as_json()


@router.delete(
    "/people/{person_id}",
    response_model=Erasure,
    responses=refusals(404, _404="No such person (`person_not_found`)."),
)
def erase(actor: Eraser, person_id: PersonInPath, runtime: RuntimeDep) -> dict[str, Any]:
    """Destroy the person's keys and delete their records; nothing of theirs decrypts again.
    Durable step by step: an erasure interrupted by a crash is finished at the next start."""
    receipt = erase_person(
        runtime.db, runtime.keys, runtime.clock, actor=actor.ref, person_id=person_id
    )
    return {
        "person_id": receipt.person_id,
        "keys_destroyed": receipt.keys_destroyed,
        "records_deleted": receipt.records_deleted,
        "events_deleted": receipt.events_deleted,
    }
