"""`POST /v1/collect`: a submission to one of the policy's collection points."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header
from pydantic import BaseModel, ConfigDict, Field

from charter.staff.service import Actor
from charter.vault.collection import Submission, collect
from charter.web.auth import FORM_BODY_BYTES, Permit
from charter.web.deps import PolicyDep, RuntimeDep, gpc_signal
from charter.web.params import CustomerId, FieldName, PersonId, PointId, SourceName

router = APIRouter(prefix="/v1", tags=["collection"])
Collector = Annotated[Actor, Depends(Permit("people:collect", body_bytes=FORM_BODY_BYTES))]
FieldValue = Annotated[str, Field(max_length=100_000)]
VisitorIdentifier = Annotated[str, Field(min_length=1, max_length=200)]


class Who(BaseModel):
    model_config = ConfigDict(extra="forbid")

    person_id: PersonId | None = None
    visitor_id: VisitorIdentifier | None = None
    other_visitor_ids: list[VisitorIdentifier] = Field(default_factory=list, max_length=50)
    customer_id: CustomerId | None = None


class CollectBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    collection_point: PointId
    person: Who = Field(default_factory=Who)
    fields: dict[FieldName, FieldValue] = Field(max_length=200)
    source: Literal["given", "automatic", "other_source"] = "given"
    source_name: SourceName | None = None
    publish: bool = Field(default=False, description="The person agreed to publication (reviews).")


@router.post("/collect", status_code=201)
def collect_submission(
    actor: Collector,
    body: CollectBody,
    runtime: RuntimeDep,
    policy: PolicyDep,
    sec_gpc: Annotated[
        str | None,
        Header(alias="Sec-GPC", description="1: the person's browser sent Global Privacy Control"),
    ] = None,
) -> dict[str, Any]:
    """Store a submission as the policy declares it: refused if a mandatory field is missing or
    a field is not declared."""
    with runtime.db.writing() as session:
        receipt = collect(
            session,
            runtime.keys,
            runtime.clock,
            policy,
            actor=actor.ref,
            submission=Submission(
                collection_point=body.collection_point,
                fields=body.fields,
                person_id=body.person.person_id,
                visitor_id=body.person.visitor_id,
                extra_visitor_ids=tuple(body.person.other_visitor_ids),
                customer_id=body.person.customer_id,
                source=body.source,
                source_name=body.source_name,
                publish=body.publish,
                gpc=gpc_signal(sec_gpc),
            ),
        )
        return {
            "person_id": receipt.person_id,
            "submission_id": receipt.submission_id,
            "stored_fields": list(receipt.stored_fields),
            "published": receipt.published,
        }
