"""The refusals each route documents in /openapi.json, in the body Charter really sends.

Every refusal leaves as `{"error": {"code", "message", "details"?}}` (web/errors.py). Some
refusals come from what a route is, not from what it does: the Gate checks the key of every
keyed route before the body is read (401, 403, 429, 503), every route with a body has it
measured, timed and parsed (400, 408, 413, 415, 503), and every route with parameters has
them validated (422). `document_refusals` adds those to each route from its shape, so that no
route can forget one; a route declares the refusals of its own rules with `refusals(...)`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field

from charter.web.auth import permits_of


class Refusal(BaseModel):
    code: str = Field(description="Stable: clients branch on it.", examples=["person_not_found"])
    message: str = Field(description="Why, in words, for people.")
    details: Any = Field(
        default=None, description="Where the refusal names fields or topics: which ones."
    )


class ErrorBody(BaseModel):
    """What every refusal carries."""

    error: Refusal


# What each status means across Charter; the codes listed are the ones a client meets most.
_MEANING = {
    400: "The body is not valid JSON (`malformed_json`).",
    401: "No key, or a key that is unknown, revoked, expired or of a disabled staff member "
    "(`missing_key`, `malformed_key`, `invalid_key`).",
    403: "The key's role lacks the route's permission (`permission_denied`, audited).",
    404: "Nothing of that name or id.",
    408: "The body took longer than `CHARTER_BODY_TIMEOUT_S` to arrive.",
    409: "The request conflicts with what is recorded.",
    410: "The person was erased (`person_erased`).",
    413: "The body is larger than the route takes (`too_large`).",
    415: "The body is not sent as `application/json` (`unsupported_media_type`).",
    422: "The request is not valid (`invalid_request`, naming each field and its problem; "
    "`nul_character` for a NUL anywhere in it), or breaks a rule of the policy (its own code).",
    429: "Too many refused keys from this client this minute (`too_many_attempts`), or too many "
    "public requests (`too_many_requests`); `Retry-After` says when to come back.",
    503: "The database is not answering (`database_unavailable`) or the server holds as many "
    "bodies as it may (`overloaded`); `Retry-After` says when to retry.",
}


def refusals(*statuses: int, **meanings: str) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route's own refusals: each status with Charter's error body and a
    description (`meanings`, by `_<status>`, says what it means on this route)."""
    return {
        status: {"model": ErrorBody, "description": _description(status, meanings)}
        for status in statuses
    }


def _description(status: int, meanings: dict[str, str]) -> str:
    meaning = meanings.get(f"_{status}")
    if meaning is None:
        return _MEANING[status]
    if status == 422:
        # Every route with input also refuses input that breaks its schema.
        return f"A field that breaks the schema (`invalid_request`), or: {meaning}"
    return meaning


def document_refusals(router: APIRouter) -> None:
    """Add to every route of `router` the refusals its shape brings (see the module's
    docstring); done again, it changes nothing."""
    for route in router.routes:
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        shape: list[int] = []
        if permits_of(route.dependant):
            shape += [401, 403, 429, 503]
        if route.body_field is not None:
            shape += [400, 408, 413, 415, 503]
        dependant = route.dependant
        if route.body_field is not None or any(
            (dependant.path_params, dependant.query_params, dependant.header_params)
        ):
            shape.append(422)
        for status, response in refusals(*dict.fromkeys(shape)).items():
            route.responses.setdefault(status, response)
