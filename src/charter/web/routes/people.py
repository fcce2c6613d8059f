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
from charter.web.deps import PolicyDep, RuntimeDep
from charter.web.params import PersonId, PersonInPath

router = APIRouter(prefix="/v1", tags=["people"])
User = Annotated[Actor, Depends(Permit("people:use"))]
Asker = Annotated[Actor, Depends(Permit("decisions:ask"))]
Eraser = Annotated[Actor, Depends(Permit("people:erase"))]
Category = Annotated[str, Field(min_length=1, max_length=64)]


class UseBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    purpose: Annotated[str, Field(min_length=1, max_length=64)]
    categories: Annotated[list[Category], Field(min_length=1, max_length=100)]


class PageOfUse(UseBody):
    limit: int = Field(
        default=1000, ge=1, le=10_000, description="At most this many stored values a page."
    )
    after: Annotated[str, Field(max_length=64)] | None = Field(
        default=None, description="The `next` of the page before; none for the first page."
    )


class DecisionBody(UseBody):
    person_id: PersonId


def _refusal(decision: Decision) -> JSONResponse:
    return JSONResponse(
        {
            "error": {"code": decision.code, "message": decision.reason},
            "decision": decision.as_json(),
        },
        status_code=403,
    )


@router.post("/people/{person_id}/use")
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


@router.post("/decisions")
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


@router.delete("/people/{person_id}")
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
