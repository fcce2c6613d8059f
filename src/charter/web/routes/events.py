"""`POST /v1/events`: batches of log data, stored once per idempotency key, durable on 200."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from charter.staff.service import Actor
from charter.vault.events import MAX_BATCH, ingest_batch
from charter.web.auth import BULK_BODY_BYTES, Permit
from charter.web.contract import refusals
from charter.web.deps import PolicyDep, RuntimeDep
from charter.web.params import PersonId

router = APIRouter(prefix="/v1", tags=["events"])
Writer = Annotated[Actor, Depends(Permit("events:write", body_bytes=BULK_BODY_BYTES))]
Short = Annotated[str, Field(max_length=2048)]


class EventIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Read straight into `ingest_batch` (no copy per event): `kind` in Python, `type` in JSON.
    kind: Literal["page_view", "click"] = Field(alias="type", description="What happened.")
    time: AwareDatetime = Field(description="When, with its time zone.")
    visitor_id: Annotated[str, Field(min_length=1, max_length=200)] | None = Field(
        default=None, description="The browser's visitor cookie (`omni_vid`)."
    )
    person_id: PersonId | None = Field(default=None, description="The signed-in person.")
    ip: Annotated[str, Field(max_length=64)] | None = Field(
        default=None, description="The IP address the request came from (log data)."
    )
    user_agent: Short | None = Field(default=None, description="The browser's User-Agent.")
    path: Short | None = Field(default=None, description="The page viewed.")
    item: Short | None = Field(default=None, description="What was clicked.")
    location: Annotated[str, Field(max_length=200)] | None = Field(
        default=None, description="The rough location derived from the address."
    )
    connection: Annotated[str, Field(max_length=64)] | None = Field(
        default=None, description="The kind of connection (wifi, mobile...)."
    )
    gpc: bool = Field(
        default=False,
        description="The person's browser sent Global Privacy Control (Sec-GPC: 1) with it.",
    )


class EventBatchIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "idempotency_key": "batch-2026-12-01-0001",
                    "events": [
                        {
                            "type": "page_view",
                            "time": "2026-11-25T12:00:00Z",
                            "visitor_id": "visitor-0001",
                            "path": "/pricing",
                            "ip": "192.0.2.10",
                        }
                    ],
                }
            ]
        },
    )

    idempotency_key: Annotated[
        str, Field(min_length=8, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")
    ] = Field(description="The batch's own key: sent again, the batch is stored once.")
    events: Annotated[list[EventIn], Field(min_length=1, max_length=MAX_BATCH)]


class Ingested(BaseModel):
    idempotency_key: str
    stored: int = Field(description="Events stored by this batch.")
    duplicate: bool = Field(description="The batch was stored before; nothing was stored again.")


@router.post(
    "/events",
    response_model=Ingested,
    responses=refusals(
        404,
        409,
        _404="No such person (`person_not_found`).",
        _409="The key came with another batch (`idempotency_key_reused`) or its batch is "
        "being stored now (`idempotency_key_in_flight`), or an event's person was erased "
        "(`person_gone`).",
    ),
)
def post_events(
    actor: Writer, body: EventBatchIn, runtime: RuntimeDep, policy: PolicyDep
) -> dict[str, Any]:
    """Store a batch of automatic events; the answer comes after the batch is committed."""
    receipt = ingest_batch(
        runtime.db,
        runtime.keys,
        runtime.clock,
        policy,
        actor=actor.ref,
        batch_key=body.idempotency_key,
        events=body.events,
    )
    return {
        "idempotency_key": receipt.key,
        "stored": receipt.stored,
        "duplicate": receipt.duplicate,
    }
