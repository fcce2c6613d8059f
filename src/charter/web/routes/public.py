"""The routes a person's browser calls without a key: rate-limited, origin-checked, keyed by
the essential visitor cookie."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Cookie
from pydantic import BaseModel, ConfigDict, Field

from charter.errors import Unprocessable
from charter.vault.choices import issue_consent_receipt
from charter.web.contract import refusals
from charter.web.deps import PersonsBrowser, PolicyDep, RuntimeDep

router = APIRouter(prefix="/v1/public", tags=["public"])
# The essential cookie of the policy's registry that names a browser (C10, C11).
VISITOR_COOKIE = "omni_vid"
VisitorCookie = Annotated[
    str | None,
    Cookie(alias=VISITOR_COOKIE, max_length=200, description="The essential visitor cookie."),
]


class ReceiptRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"topic": "purpose:other_with_consent", "policy_version": "1.0"}]
        },
    )

    topic: Annotated[str, Field(min_length=1, max_length=80)] = Field(
        description="The choice the person says yes to, e.g. 'purpose:other_with_consent'."
    )
    policy_version: Annotated[str, Field(min_length=1, max_length=32)] = Field(
        description="The version of the policy whose text the person was shown."
    )


class Receipt(BaseModel):
    receipt: str = Field(description="The receipt, for the service to forward with the choice.")
    topic: str
    expires_at: dt.datetime


@router.post(
    "/consent-receipts",
    status_code=201,
    response_model=Receipt,
    responses=refusals(
        403,
        409,
        422,
        429,
        _403="Not from the person's browser: no `Origin` (`origin_required`), an origin not "
        "in `CHARTER_ALLOWED_ORIGINS` (`origin_not_allowed`), or a service key sent "
        "(`not_the_person`).",
        _409="The policy changed since the person was shown it (`policy_version_changed`).",
        _422="No visitor cookie (`visitor_required`), or not a topic the person can choose "
        "(`unknown_choice`).",
        _429="Too many public requests from this client this minute (`too_many_requests`).",
    ),
)
def consent_receipt(
    _: PersonsBrowser,
    body: ReceiptRequest,
    runtime: RuntimeDep,
    policy: PolicyDep,
    visitor_id: VisitorCookie = None,
) -> dict[str, Any]:
    """A receipt of the person's own yes to one topic, for the service whose page asked to
    forward with the choice (`PUT /v1/people/{id}/choices`): single use, valid 10 minutes."""
    if not visitor_id:
        raise Unprocessable(
            f"the browser's visitor cookie ({VISITOR_COOKIE}) is needed", code="visitor_required"
        )
    with runtime.db.writing() as session:
        issued = issue_consent_receipt(
            session,
            runtime.clock,
            policy,
            runtime.index,
            runtime.signer,
            visitor_id=visitor_id,
            topic=body.topic,
            policy_version=body.policy_version,
        )
        return {"receipt": issued.token, "topic": issued.topic, "expires_at": issued.expires_at}
