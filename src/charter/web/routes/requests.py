"""Rights requests (C25): `POST /v1/requests` for OMNI's services and staff, their reads
and steps for privacy officers; `POST /v1/public/requests` and the verification link for
people, without a key."""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from charter.requests.fulfil import fulfil
from charter.requests.models import RightsRequest
from charter.requests.service import (
    STATES,
    Intake,
    LinkRefused,
    answer,
    classify,
    deny,
    extend,
    find_requests,
    get_request,
    start,
    steps_of,
    submit_request,
    verify_by_link,
    withdraw,
)
from charter.staff.service import Actor
from charter.web.auth import Permit
from charter.web.contract import refusals
from charter.web.deps import PolicyDep, PublicCaller, ReadSession, RuntimeDep
from charter.web.params import PersonId, QueryTime
from charter.web.units import write_unit

router = APIRouter(tags=["requests"])
Submitter = Annotated[Actor, Depends(Permit("requests:submit"))]
Manager = Annotated[Actor, Depends(Permit("requests:manage"))]
RequestId = Annotated[str, Path(min_length=1, max_length=32)]
Email = Annotated[str, Field(min_length=3, max_length=320)]
Words = Annotated[str, Field(min_length=1, max_length=500)]
RequestType = Literal[
    "shine_the_light",
    "know_categories",
    "know_specific",
    "delete",
    "correct",
    "opt_out_sale_sharing",
]


class RequestBody(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "type": "know_categories",
                    "person_id": "<person id, as POST /v1/collect returned it>",
                    "reauthenticated": True,
                    "idempotency_key": "request-2026-12-01-0001",
                }
            ]
        },
    )

    type: RequestType = Field(description="What the person asks for.")
    person_id: PersonId | None = Field(
        default=None, description="The person, when the service knows them."
    )
    email: Email | None = Field(
        default=None, description="The address to verify and answer; kept only as a blind index."
    )
    reauthenticated: bool = Field(
        default=False,
        description="The service re-authenticated the person on their own account just now "
        "(verifies the request; needs `person_id`).",
    )
    idempotency_key: Annotated[str, Field(min_length=1, max_length=200)] | None = Field(
        default=None, description="The same key again returns the first request."
    )
    field: Annotated[str, Field(min_length=1, max_length=64)] | None = Field(
        default=None, description="For `correct`: the field to correct (never its value)."
    )


class PublicRequestBody(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"type": "delete", "email": "ines@example.com"}]},
    )

    type: RequestType
    email: Email = Field(description="Where the verification link and the answer go.")


class StepOut(BaseModel):
    at: dt.datetime
    from_state: str | None
    to_state: str
    actor: str
    note: str | None


class RequestOut(BaseModel):
    request_id: str
    type: str
    state: str = Field(description=f"One of: {', '.join(STATES)}.")
    channel: str
    person_id: str | None = Field(description="The person, if Charter knows them.")
    received_at: dt.datetime
    confirm_by: dt.datetime | None
    due_at: dt.datetime
    verified_at: dt.datetime | None
    verification: str | None
    extended_at: dt.datetime | None
    closed_at: dt.datetime | None
    response: str | None
    denial_basis: str | None
    report_year: int | None
    replayed: bool = False


class RequestDetail(RequestOut):
    steps: list[StepOut]


class RequestPage(BaseModel):
    requests: list[RequestOut]
    next: str | None = Field(description="`after` for the next page; null on the last.")


class PublicAnswer(BaseModel):
    status: Literal["received"]
    message: str


class ExtendBody(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"reason": "many systems to search"}]}
    )

    reason: Words
    email: Email | None = Field(default=None, description="Where the notice goes, if anywhere.")


class DenyBody(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"basis": "the request could not be verified"}]},
    )

    basis: Words


class AnswerBody(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"response": "categories sent to the person"}]},
    )

    response: Words


class ClassifyBody(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"type": "shine_the_light"}]}
    )

    type: RequestType


def _out(request: RightsRequest, *, replayed: bool = False) -> dict[str, Any]:
    shown = (name for name in RequestOut.model_fields if name not in ("request_id", "replayed"))
    return {
        "request_id": request.id,
        **{name: getattr(request, name) for name in shown},
        "replayed": replayed,
    }


_MANAGED = refusals(
    404,
    409,
    _404="No request with that id (`request_not_found`).",
    _409="The step does not follow from where the request is (`invalid_transition`, "
    "`not_verified`, `request_closed`, `extended`, `past_due`, `no_extension`, "
    "`already_classified`).",
)


@router.post(
    "/v1/requests",
    status_code=201,
    response_model=RequestOut,
    responses=refusals(
        422,
        _422="No person and no address (`no_requester`), a re-authentication without the "
        "person (`reauthentication_needs_person`), or a bad address (`invalid_email`).",
    ),
)
async def post_request(
    actor: Submitter, body: RequestBody, *, policy: PolicyDep, runtime: RuntimeDep
) -> dict[str, Any]:
    """Record a rights request from an OMNI service: verified at once if it needs no
    verification or the service re-authenticated the person; otherwise a single-use link
    goes to `email`. The deadlines come from the policy."""
    intake = Intake(
        type=body.type,
        channel="api",
        email=body.email,
        person_id=body.person_id,
        reauthenticated=body.reauthenticated,
        source_key=f"api:{actor.staff_id}:{body.idempotency_key}" if body.idempotency_key else None,
        details={"field": body.field} if body.field else None,
    )

    def submit(session: Session) -> dict[str, Any]:
        done = submit_request(
            session,
            runtime.clock,
            policy,
            runtime.index,
            actor=actor.ref,
            intake=intake,
            outbox=runtime.outbox,
            links=runtime.links,
            replies=runtime.replies,
        )
        return _out(done.request, replayed=done.replayed)

    return await write_unit(runtime, submit)


@router.get("/v1/requests", response_model=RequestPage)
def list_requests(
    _: Manager,
    session: ReadSession,
    *,
    state: Annotated[str | None, Query(max_length=24, description="Only in this state.")] = None,
    type: Annotated[str | None, Query(max_length=32, description="Only of this type.")] = None,
    due_before: Annotated[
        QueryTime | None, Query(description="Only open requests due before this time.")
    ] = None,
    after: Annotated[str | None, Query(max_length=32, description="The `next` before.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Requests, by id, filtered; with `due_before`, the open ones due before then."""
    found = find_requests(
        session, state=state, type=type, due_before=due_before, after=after, limit=limit
    )
    return {
        "requests": [_out(request) for request in found],
        "next": found[-1].id if len(found) == limit else None,
    }


@router.get("/v1/requests/{request_id}", response_model=RequestDetail, responses=_MANAGED)
def get_one_request(_: Manager, request_id: RequestId, session: ReadSession) -> dict[str, Any]:
    """One request, with every step it went through."""
    request = get_request(session, request_id)
    steps = [
        {
            "at": step.at,
            "from_state": step.from_state,
            "to_state": step.to_state,
            "actor": step.actor,
            "note": step.note,
        }
        for step in steps_of(session, request_id)
    ]
    return {**_out(request), "steps": steps}


async def _step(runtime: Any, work: Callable[[Session], RightsRequest]) -> dict[str, Any]:
    def run(session: Session) -> dict[str, Any]:
        return _out(work(session))

    return await write_unit(runtime, run)


@router.post("/v1/requests/{request_id}/start", response_model=RequestOut, responses=_MANAGED)
async def start_request(actor: Manager, request_id: RequestId, *, runtime: RuntimeDep) -> Any:
    """Begin work on a verified request."""
    return await _step(runtime, lambda s: start(s, runtime.clock, request_id, actor=actor.ref))


@router.post("/v1/requests/{request_id}/answer", response_model=RequestOut, responses=_MANAGED)
async def answer_request(
    actor: Manager, request_id: RequestId, body: AnswerBody, *, runtime: RuntimeDep
) -> Any:
    """Close a verified request with what was done (no personal value in `response`)."""
    return await _step(
        runtime,
        lambda s: answer(s, runtime.clock, request_id, actor=actor.ref, response=body.response),
    )


@router.post("/v1/requests/{request_id}/deny", response_model=RequestOut, responses=_MANAGED)
async def deny_request(
    actor: Manager, request_id: RequestId, body: DenyBody, *, runtime: RuntimeDep
) -> Any:
    """Close a request with a denial and its basis."""
    return await _step(
        runtime, lambda s: deny(s, runtime.clock, request_id, actor=actor.ref, basis=body.basis)
    )


@router.post("/v1/requests/{request_id}/withdraw", response_model=RequestOut, responses=_MANAGED)
async def withdraw_request(actor: Manager, request_id: RequestId, *, runtime: RuntimeDep) -> Any:
    """Close a request the person withdrew."""
    return await _step(runtime, lambda s: withdraw(s, runtime.clock, request_id, actor=actor.ref))


@router.post("/v1/requests/{request_id}/extend", response_model=RequestOut, responses=_MANAGED)
async def extend_request(
    actor: Manager,
    request_id: RequestId,
    body: ExtendBody,
    *,
    policy: PolicyDep,
    runtime: RuntimeDep,
) -> Any:
    """Extend the deadline once, by the right's extension, with the reason; a notice goes to
    `email` when given."""
    return await _step(
        runtime,
        lambda s: extend(
            s,
            runtime.clock,
            policy,
            request_id,
            actor=actor.ref,
            reason=body.reason,
            outbox=runtime.outbox,
            address=body.email,
        ),
    )


@router.post("/v1/requests/{request_id}/classify", response_model=RequestOut, responses=_MANAGED)
async def classify_request(
    actor: Manager,
    request_id: RequestId,
    body: ClassifyBody,
    *,
    policy: PolicyDep,
    runtime: RuntimeDep,
) -> Any:
    """Give an unclear request (an e-mail staff read) its type."""
    return await _step(
        runtime,
        lambda s: classify(
            s, runtime.clock, policy, request_id, actor=actor.ref, request_type=body.type
        ),
    )


class FulfilBody(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"value": "ines.new@example.com"}]}
    )

    value: Annotated[str, Field(min_length=1, max_length=10_000)] | None = Field(
        default=None, description="`correct`: the new value of the field the request names."
    )


class FulfilOut(BaseModel):
    request: RequestOut
    response: str = Field(description="What was done, as the request records it.")
    mailed: bool = Field(description="The answer was queued to the address the request gave.")
    report: dict[str, Any] = Field(
        description="`know_categories`: categories, sources, purposes, recipients; else empty."
    )
    kept: list[str] = Field(description="`delete`: what was kept, and why.")
    recipients: list[str] = Field(
        description="Recipients told of the deletion or the opt-out (recorded)."
    )


@router.post(
    "/v1/requests/{request_id}/fulfil",
    response_model=FulfilOut,
    responses=refusals(
        404,
        409,
        422,
        _422="A correction without its field or value (`correction_incomplete`), or a value "
        "its collection point refuses.",
        _409="Not verified (`not_verified`), closed (`invalid_transition`), a type answered "
        "another way (`not_fulfilled_here`), no address for a Shine the Light report "
        "(`no_reply_address`), or a correction of the address that verified it "
        "(`verified_by_the_corrected_field`).",
        _404="No request with that id (`request_not_found`), or no stored value of the field "
        "to correct (`field_not_held`).",
    ),
)
async def fulfil_request(
    actor: Manager,
    request_id: RequestId,
    body: FulfilBody | None = None,
    *,
    policy: PolicyDep,
    runtime: RuntimeDep,
) -> dict[str, Any]:
    """Carry out a verified know-categories, delete or opt-out request and answer it: the
    categories report; the erasure, with what was kept and why; the opt-out recorded as the
    person's choice. A person Charter does not know gets "no personal information found"."""
    done = await run_in_threadpool(
        fulfil,
        runtime.db,
        runtime.keys,
        runtime.clock,
        policy,
        request_id=request_id,
        actor=actor.ref,
        mail=(runtime.outbox, runtime.replies),
        value=body.value if body is not None else None,
    )
    if done.request is None:  # pragma: no cover - fulfil answers every request it carries out
        raise LookupError(request_id)
    return {
        "request": _out(done.request),
        "response": done.response,
        "mailed": done.mailed,
        "report": done.report,
        "kept": list(done.kept),
        "recipients": list(done.recipients),
    }


_RECEIVED = (
    "Your request was received. If Charter can answer it at this address, a message with a "
    "link to confirm it is on its way; the link works once, for 24 hours."
)


@router.post(
    "/v1/public/requests",
    status_code=202,
    response_model=PublicAnswer,
    responses=refusals(
        422,
        429,
        _422="A bad address (`invalid_email`).",
        _429="Too many requests from this client (`too_many_requests`).",
    ),
)
async def post_public_request(
    client: PublicCaller, body: PublicRequestBody, *, policy: PolicyDep, runtime: RuntimeDep
) -> dict[str, Any]:
    """A person's own request, without a key. The answer is the same whether or not Charter
    knows the address: it reveals nothing. A link to confirm it goes to the address."""
    intake = Intake(type=body.type, channel="public", email=body.email)

    def submit(session: Session) -> None:
        submit_request(
            session,
            runtime.clock,
            policy,
            runtime.index,
            actor=f"client:{client}",
            intake=intake,
            outbox=runtime.outbox,
            links=runtime.links,
            replies=runtime.replies,
        )

    await write_unit(runtime, submit)
    return {"status": "received", "message": _RECEIVED}


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>
<body><main><h1>{title}</h1><p>{text}</p>{code}</main></body></html>
"""


def _page(title: str, text: str, *, status: int = 200, code: str | None = None) -> HTMLResponse:
    shown = f'<p>Code: <code id="code">{html.escape(code)}</code></p>' if code else ""
    return HTMLResponse(
        _PAGE.format(title=html.escape(title), text=html.escape(text), code=shown),
        status_code=status,
    )


@router.get(
    "/v1/public/requests/verify",
    response_class=HTMLResponse,
    responses={
        200: {"content": {"text/html": {}}, "description": "The request is confirmed."},
        400: {
            "content": {"text/html": {}},
            "description": "A forged, expired or used link (`link_invalid`, `link_expired`, "
            "`link_used`), audited.",
        },
        422: {
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
            "description": "No token, or one that breaks the query's shape (`invalid_request`).",
        },
    },
)
async def verify_request(
    request: Request,
    token: Annotated[str, Query(min_length=1, max_length=1000)],
    *,
    runtime: RuntimeDep,
) -> HTMLResponse:
    """The link mailed to the person: confirms their request, once."""
    client = runtime.client_ref(request.scope)

    def verify(session: Session) -> RightsRequest | LinkRefused:
        try:
            return verify_by_link(session, runtime.clock, runtime.links, token=token, client=client)
        except LinkRefused as refused:
            return refused

    found = await write_unit(runtime, verify)
    if isinstance(found, LinkRefused):
        return _page("This link does not work", found.message, status=400, code=found.code)
    due = found.due_at.date().isoformat()
    return _page(
        "Your request is confirmed",
        f"OMNI will answer your {found.type.replace('_', ' ')} request by {due}.",
    )
