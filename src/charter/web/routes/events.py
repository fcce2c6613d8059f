"""`POST /v1/events`: batches of log data, stored once per idempotency key, durable on 200."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from charter.staff.service import Actor
from charter.vault.events import MAX_BATCH, plan_batch, prepare_batch, store_batch
from charter.web.auth import Permit
from charter.web.deps import PolicyDep, RuntimeDep

router = APIRouter(prefix="/v1", tags=["events"])
Writer = Annotated[Actor, Depends(Permit("events:write"))]
Short = Annotated[str, Field(max_length=2048)]


class EventIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Read straight into `prepare_batch` (no copy per event): `kind` in Python, `type` in JSON.
    kind: Literal["page_view", "click"] = Field(alias="type")
    time: AwareDatetime
    visitor_id: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    person_id: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    ip: Annotated[str, Field(max_length=64)] | None = None
    user_agent: Short | None = None
    path: Short | None = None
    item: Short | None = None
    location: Annotated[str, Field(max_length=200)] | None = None
    connection: Annotated[str, Field(max_length=64)] | None = None


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
    # Most of the work is done before the write lock is taken, so that meanwhile another
    # request's batch can be written: the events are encoded, their people read and the
    # events sealed. Under the lock the batch is stored if those people did not change.
    batch = prepare_batch(runtime.keys, batch_key=body.idempotency_key, events=body.events)
    with runtime.db.reading() as session:
        planned = plan_batch(session, runtime.keys, runtime.clock, policy, batch)
    with runtime.db.writing() as session:
        receipt = store_batch(
            session,
            runtime.keys,
            runtime.clock,
            policy,
            actor=actor.ref,
            batch=batch,
            planned=planned,
        )
        return {
            "idempotency_key": receipt.key,
            "stored": receipt.stored,
            "duplicate": receipt.duplicate,
        }
