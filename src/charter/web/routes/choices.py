"""A person's choices: `GET` and `PUT /v1/people/{id}/choices` (a `Sec-GPC: 1` header counts).

The routes are `async` and run their unit of work where it costs least (web/units.py): a
plain `def` route would cost a hand-off to the thread pool and a second one, FastAPI checking
its answer in the pool too.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from charter.consent.choices import topics
from charter.consent.models import ChoiceChange as StoredChoiceChange
from charter.db import column_max
from charter.staff.service import Actor
from charter.vault.choices import PersonChoices, read_choices, save_choices
from charter.web.auth import Permit
from charter.web.contract import refusals
from charter.web.deps import PolicyDep, RuntimeDep, gpc_signal
from charter.web.params import PersonInPath
from charter.web.units import write_unit

router = APIRouter(prefix="/v1/people/{person_id}/choices", tags=["choices"])
Reader = Annotated[Actor, Depends(Permit("choices:read"))]
Writer = Annotated[Actor, Depends(Permit("choices:write"))]
Receipt = Annotated[str, Field(min_length=1, max_length=512)]


class ChoicesBody(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"choices": {"purpose:promotional": False}}]},
    )

    choices: dict[Annotated[str, Field(max_length=80)], bool] = Field(
        default_factory=dict,
        max_length=100,
        description=(
            "topic -> granted, e.g. {'purpose:promotional': false, 'cookie:performance': true}. "
            "A caller may record opt-outs and withdrawals on its own word; a `true` needs the "
            "person's consent receipt for that topic in `receipts`."
        ),
    )
    receipts: list[Receipt] = Field(
        default_factory=list,
        max_length=100,
        description="Consent receipts the person's browser obtained from Charter, one per topic.",
    )


class ChoiceChange(BaseModel):
    id: int
    topic: str
    granted: bool
    method: str = Field(description="How it was recorded: `api`, `gpc`, `preference_center`...")
    policy_version: str
    at: str = Field(description="When, in UTC (ISO 8601, `Z`).")


class Choices(BaseModel):
    person_id: str = Field(description="Whose choices: the user a visitor became, if so.")
    current: dict[str, bool] = Field(description="topic -> granted, for the choices in force.")


class ChoicesWithHistory(Choices):
    offered: dict[str, str] = Field(description="topic -> what it means, in the policy's words.")
    history: list[ChoiceChange]
    history_next: int | None = Field(description="`history_after` for the next page.")


_NOT_HERE = {
    "_404": "No such person (`person_not_found`).",
    "_410": "The person was erased (`person_erased`).",
}


@router.get("", response_model=ChoicesWithHistory, responses=refusals(404, 410, **_NOT_HERE))
async def get_choices(
    actor: Reader,
    person_id: PersonInPath,
    *,
    policy: PolicyDep,
    runtime: RuntimeDep,
    history_after: Annotated[
        int,
        Query(
            ge=0,
            le=column_max(StoredChoiceChange, "id"),
            description="The `history_next` of the page before.",
        ),
    ] = 0,
    history_limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """The person's current choices, what they can choose on, and their history, a page at a
    time. A visitor who signed up has the choices of the user they became. The read is
    audited."""

    def read(session: Session) -> PersonChoices:
        return read_choices(
            session,
            runtime.clock,
            actor=actor.ref,
            person_id=person_id,
            history_after=history_after,
            history_limit=history_limit,
        )

    found = await write_unit(runtime, read)
    history = [c.as_json() for c in found.history]
    return {
        "person_id": found.person_id,
        "current": dict(found.current),
        "offered": topics(policy),
        "history": history,
        "history_next": history[-1]["id"] if len(history) == history_limit else None,
    }


@router.put(
    "",
    response_model=Choices,
    responses=refusals(
        403,
        404,
        409,
        _403="A yes without the person's consent receipt for its topic "
        "(`consent_needs_the_person`), or a receipt that does not stand for it "
        "(`receipt_invalid`, `receipt_expired`, `receipt_used`, `receipt_not_for_topic`, "
        "`receipt_not_for_person`).",
        _404="No such person (`person_not_found`).",
        _409="The person was erased (`person_erased`) or objected to the policy "
        "(`person_objected`): nothing more is recorded about them.",
    ),
)
async def put_choices(
    actor: Writer,
    person_id: PersonInPath,
    *,
    runtime: RuntimeDep,
    policy: PolicyDep,
    body: ChoicesBody | None = None,
    sec_gpc: Annotated[
        str | None, Header(alias="Sec-GPC", description="1: Global Privacy Control")
    ] = None,
) -> dict[str, Any]:
    """Record choices; they govern the very next decision. The answer holds the choices now
    in force; `GET` adds the full history."""
    given = body or ChoicesBody()

    def save(session: Session) -> PersonChoices:
        return save_choices(
            session,
            runtime.clock,
            policy,
            runtime.signer,
            actor=actor.ref,
            person_id=person_id,
            choices=given.choices,
            method="api",
            gpc=gpc_signal(sec_gpc),
            receipts=given.receipts,
        )

    saved = await write_unit(runtime, save)
    return {"person_id": saved.person_id, "current": dict(saved.current)}
