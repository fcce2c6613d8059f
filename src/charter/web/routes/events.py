"""`POST /v1/events`: batches of log data, stored once per idempotency key, durable on 200."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from charter.staff.service import Actor
from charter.vault.events import MAX_BATCH, ingest_batch
from charter.web.auth import BULK_BODY_BYTES, Permit
from charter.web.deps import PolicyDep, RuntimeDep
from charter.web.params import PersonId

router = APIRouter(prefix="/v1", tags=["events"])
Writer = Annotated[Actor, Depends(Permit("events:write", body_bytes=BULK_BODY_BYTES))]
Short = Annotated[str, Field(max_length=2048)]


class EventIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Read straight into `ingest_batch` (no copy per event): `kind` in Python, `type` in JSON.
    kind: Literal["page_view", "click"] = Field(alias="type")
    time: AwareDatetime
    visitor_id: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    person_id: PersonId | None = None
    ip: Annotated[str, Field(max_length=64)] | None = None
    user_agent: Short | None = None
    path: Short | None = None
    item: Short | None = None
    location: Annotated[str, Field(max_length=200)] | None = None
    connection: Annotated[str, Field(max_length=64)] | None = None
    gpc: bool = Field(
        default=False,
        description="The person's browser sent Global Privacy Control (Sec-GPC: 1) with it.",
    )


class EventBatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    idempotency_key: Annotated[
        str, Field(min_length=8, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")
    ]
    events: Annotated[list[EventIn], Field(min_length=1, max_length=MAX_BATCH)]


@router.post("/events")
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
