"""Selections: the people of a disclosure too large for one request (up to a million),
stored ahead of it a page or an NDJSON stream at a time, then named by `POST
/v1/disclosures` as `selection`."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from charter.disclosures.models import Selection
from charter.disclosures.selections import (
    MAX_SELECTED,
    add_to_selection,
    create_selection,
    open_selection,
)
from charter.errors import Unprocessable, UnsupportedMediaType
from charter.staff.service import Actor
from charter.web.auth import BULK_BODY_BYTES, Permit
from charter.web.contract import refusals
from charter.web.deps import ReadSession, RuntimeDep
from charter.web.params import PERSON_ID_LENGTH
from charter.web.units import bulk_write_unit, write_unit

router = APIRouter(prefix="/v1/disclosures", tags=["disclosures"])
Discloser = Annotated[Actor, Depends(Permit("disclosures:make"))]
# A page or a stream of ids: as much as CHARTER_MAX_BODY_BYTES allows (16 MiB by default,
# some 450,000 ids of 32 characters as NDJSON).
Filler = Annotated[Actor, Depends(Permit("disclosures:make", body_bytes=BULK_BODY_BYTES))]
SelectionId = Annotated[str, Path(min_length=1, max_length=32)]
NDJSON = "application/x-ndjson"


class SelectionOut(BaseModel):
    selection_id: str
    size: int = Field(description="Distinct person ids in the selection.")
    used_by: int | None = Field(description="The disclosure that used it, if one has.")


def _out(selection: Selection) -> dict[str, Any]:
    return {"selection_id": selection.id, "size": selection.size, "used_by": selection.used_by}


@router.post("/selections", status_code=201, response_model=SelectionOut)
async def post_selection(actor: Discloser, *, runtime: RuntimeDep) -> dict[str, Any]:
    """A new, empty selection, for `POST /v1/disclosures/selections/{id}/people`."""

    def create(session: Session) -> dict[str, Any]:
        return _out(create_selection(session, runtime.clock, actor=actor))

    return await write_unit(runtime, create)


@router.get(
    "/selections/{selection_id}",
    response_model=SelectionOut,
    responses=refusals(404, _404="No selection of yours with that id (`selection_not_found`)."),
)
def get_selection(actor: Discloser, selection_id: SelectionId, session: ReadSession) -> Any:
    """How many people the selection holds, and the disclosure that used it."""
    return _out(open_selection(session, actor, selection_id))


_PEOPLE_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["people"],
                "additionalProperties": False,
                "properties": {
                    "people": {
                        "type": "array",
                        "minItems": 1,
                        "items": {"type": "string", "minLength": 1, "maxLength": PERSON_ID_LENGTH},
                    }
                },
                "examples": [{"people": ["<person id>"]}],
            },
        },
        NDJSON: {
            "schema": {"type": "string", "description": "One JSON string (a person id) a line."},
            "example": '"<person id>"\n"<another person id>"\n',
        },
    },
}


@router.post(
    "/selections/{selection_id}/people",
    response_model=SelectionOut,
    openapi_extra={"requestBody": _PEOPLE_BODY},
    responses=refusals(
        404,
        409,
        415,
        422,
        _404="No selection of yours with that id (`selection_not_found`).",
        _409="A disclosure used the selection already (`selection_used`).",
        _415="Neither JSON nor NDJSON (`unsupported_media_type`).",
        _422=f"An id that is not a string of 1 to {PERSON_ID_LENGTH} characters, named by its "
        f"place (`invalid_people`); more than {MAX_SELECTED:,} people (`selection_too_large`).",
    ),
)
async def post_selection_people(
    actor: Filler, selection_id: SelectionId, request: Request, *, runtime: RuntimeDep
) -> dict[str, Any]:
    """Add people to the selection: a JSON page (`{"people": [...]}`) or an NDJSON stream
    (`application/x-ndjson`, one JSON string a line). An id already in it is not added
    twice; nothing is added if any id is bad."""
    people = _people_of(request.headers.get("content-type", ""), await request.body())

    def add(session: Session) -> dict[str, Any]:
        return _out(
            add_to_selection(session, actor=actor, selection_id=selection_id, people=people)
        )

    return await bulk_write_unit(runtime, add)


def _people_of(content_type: str, body: bytes) -> list[str]:
    """The person ids of a JSON page or an NDJSON stream; a bad one is named by its place
    (its index in `people`, or its line)."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "application/json":
        try:
            page = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise Unprocessable("the body is not JSON", code="invalid_json") from None
        if not isinstance(page, dict) or set(page) != {"people"}:
            raise Unprocessable('the body is {"people": [...]}', code="invalid_people")
        listed = page["people"]
        if not isinstance(listed, list):
            raise Unprocessable("`people` is a list of person ids", code="invalid_people")
        placed = [(f"people[{n}]", value) for n, value in enumerate(listed)]
    elif media in (NDJSON, "application/jsonl"):
        placed = [
            (f"line {n}", _line_value(line))
            for n, line in enumerate(body.splitlines(), start=1)
            if line.strip()
        ]
    else:
        raise UnsupportedMediaType(
            f"send application/json or {NDJSON}", code="unsupported_media_type"
        )
    for place, value in placed:
        if not isinstance(value, str) or not 1 <= len(value) <= PERSON_ID_LENGTH:
            raise Unprocessable(
                f"{place} is not a person id (a string of 1 to {PERSON_ID_LENGTH} characters)",
                code="invalid_people",
            )
    if not placed:
        raise Unprocessable("the body names nobody", code="invalid_people")
    return [value for _, value in placed]


def _line_value(line: bytes) -> object:
    try:
        return json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
