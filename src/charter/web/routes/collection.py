"""`POST /v1/collect`: a submission to one of the policy's collection points."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header
from pydantic import BaseModel, ConfigDict, Field

from charter.staff.service import Actor
from charter.vault.collection import Submission, collect
from charter.web.auth import FORM_BODY_BYTES, Permit
from charter.web.contract import refusals
from charter.web.deps import PolicyDep, RuntimeDep, gpc_signal
from charter.web.params import CustomerId, FieldName, PersonId, PointId, SourceName

router = APIRouter(prefix="/v1", tags=["collection"])
Collector = Annotated[Actor, Depends(Permit("people:collect", body_bytes=FORM_BODY_BYTES))]
FieldValue = Annotated[str, Field(max_length=100_000)]
VisitorIdentifier = Annotated[str, Field(min_length=1, max_length=200)]


class Who(BaseModel):
    """Whom the submission is from, as the calling service knows them."""

    model_config = ConfigDict(extra="forbid")

    person_id: PersonId | None = Field(
        default=None, description="The signed-in person, as Charter named them."
    )
    visitor_id: VisitorIdentifier | None = Field(
        default=None, description="The browser's visitor cookie (`omni_vid`)."
    )
    other_visitor_ids: list[VisitorIdentifier] = Field(
        default_factory=list,
        max_length=50,
        description="Other visitor cookies of the same person (other browsers, devices).",
    )
    customer_id: CustomerId | None = Field(
        default=None, description="For data a customer gives about its own users."
    )


class CollectBody(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "collection_point": "sign_up",
                    "person": {"visitor_id": "visitor-0001"},
                    "fields": {"name": "Ines Example", "email": "ines@example.com"},
                }
            ]
        },
    )

    collection_point: PointId = Field(
        description="Where the data is collected: a collection point of the policy."
    )
    person: Who = Field(default_factory=Who)
    fields: dict[FieldName, FieldValue] = Field(
        max_length=200, description="field -> value, as the collection point declares them."
    )
    source: Literal["given", "automatic", "other_source"] = Field(
        default="given",
        description="Whether the person gave it, it was collected automatically, or it came "
        "from another source.",
    )
    source_name: SourceName | None = Field(
        default=None, description="With `other_source`: which enrichment source of the policy."
    )
    publish: bool = Field(default=False, description="The person agreed to publication (reviews).")


class Collected(BaseModel):
    person_id: str = Field(description="Whose data this now is: the id to use from here on.")
    submission_id: str
    stored_fields: list[str] = Field(description="The fields stored, each encrypted.")
    published: bool = Field(description="Whether the submission (a review) may be published.")


@router.post(
    "/collect",
    status_code=201,
    response_model=Collected,
    responses=refusals(
        404,
        409,
        _404="Not a collection point of the policy (`unknown_collection_point`), or no such "
        "person (`person_not_found`).",
        _409="The person was erased or objected to the policy (`person_erased`, "
        "`person_objected`): nothing more is collected.",
    ),
)
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
