"""A person's choices: `GET` and `PUT /v1/people/{id}/choices` (a `Sec-GPC: 1` header counts)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header
from pydantic import BaseModel, ConfigDict, Field

from charter.consent.choices import topics
from charter.staff.service import Actor
from charter.vault.choices import choices_of, save_choices
from charter.web.auth import Permit
from charter.web.deps import PolicyDep, ReadSession, RuntimeDep

router = APIRouter(prefix="/v1/people/{person_id}/choices", tags=["choices"])
Reader = Annotated[Actor, Depends(Permit("choices:read"))]
Writer = Annotated[Actor, Depends(Permit("choices:write"))]


class ChoicesBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    choices: dict[Annotated[str, Field(max_length=80)], bool] = Field(
        default_factory=dict,
        max_length=100,
        description=(
            "topic -> granted, e.g. {'purpose:promotional': false, 'cookie:performance': true}"
        ),
    )
    method: Literal["banner", "preference_page", "api"] = "api"


@router.get("")
def get_choices(
    _: Reader, person_id: str, policy: PolicyDep, session: ReadSession
) -> dict[str, Any]:
    """The person's current choices, what they can choose on, and the full history.
    A visitor who signed up has the choices of the user they became."""
    found = choices_of(session, person_id)
    return {
        "person_id": found.person_id,
        "current": dict(found.current),
        "offered": topics(policy),
        "history": [c.as_json() for c in found.history],
    }


@router.put("")
def put_choices(
    actor: Writer,
    person_id: str,
    body: ChoicesBody,
    *,
    runtime: RuntimeDep,
    policy: PolicyDep,
    sec_gpc: Annotated[
        str | None, Header(alias="Sec-GPC", description="1: Global Privacy Control")
    ] = None,
) -> dict[str, Any]:
    """Record choices; they govern the very next decision. The answer holds the choices now
    in force; `GET` adds the full history."""
    with runtime.db.writing() as session:
        saved = save_choices(
            session,
            runtime.clock,
            policy,
            actor=actor.ref,
            person_id=person_id,
            choices=body.choices,
            method=body.method,
            gpc=(sec_gpc or "").strip() == "1",
        )
        return {"person_id": saved.person_id, "current": dict(saved.current)}
