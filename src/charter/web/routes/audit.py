"""The audit log over HTTP: page through entries, verify the chain (privacy officer)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from charter.audit.chain import Checkpoint, verify_chain
from charter.audit.models import MAX_SEQ
from charter.audit.reading import page_entries
from charter.staff.service import Actor
from charter.web.auth import Permit
from charter.web.deps import ReadSession

router = APIRouter(prefix="/v1/audit", tags=["audit"])
AuditReader = Annotated[Actor, Depends(Permit("audit:read"))]


class Entry(BaseModel):
    seq: int = Field(description="The entry's place in the chain, from 1.")
    at: str = Field(description="When, in UTC (ISO 8601, `Z`).")
    actor: str = Field(description="Who acted: `staff:<name>`, `service`, `system`, ...")
    action: str = Field(description="What was done, as a stable tag.", examples=["choices:set"])
    target: str = Field(description="What it was done to (a person id, a staff handle, ...).")
    outcome: str = Field(description="`allowed`, `denied`, `done`, ...")
    details: Any = Field(description="What else the entry records; never personal data.")
    hash: str = Field(description="The entry's hash, which the next entry chains to.")


class EntryPage(BaseModel):
    entries: list[Entry]
    next: int | None = Field(description="`after` for the next page; null on the last.")


class Verification(BaseModel):
    ok: bool = Field(description="The chain is whole (and holds the checkpoint, if given).")
    entries: int = Field(description="How many entries were checked.")
    head_hash: str = Field(description="The hash of the last entry.")
    first_bad_seq: int | None = Field(description="The first altered, removed or moved entry.")
    reason: str | None = Field(description="What is wrong there, in words.")


@router.get("", response_model=EntryPage)
def list_entries(
    _: AuditReader,
    session: ReadSession,
    after: Annotated[
        int, Query(ge=0, le=MAX_SEQ, description="Return entries after this sequence number.")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    action: Annotated[str | None, Query(max_length=96, description="Only this action tag.")] = None,
) -> dict[str, Any]:
    """Entries in chain order, `limit` at a time; `next` is the `after` of the next page."""
    entries = page_entries(session, after=after, limit=limit, action=action)
    return {
        "entries": [entry.as_json() for entry in entries],
        "next": entries[-1].seq if len(entries) == limit else None,
    }


@router.get("/verify", response_model=Verification)
def verify(
    _: AuditReader,
    session: ReadSession,
    against: Annotated[
        str | None,
        Query(
            pattern="^[1-9][0-9]{0,18}:[0-9a-f]{64}$",
            description="A checkpoint, SEQ:HASH, from `charter audit checkpoint`.",
        ),
    ] = None,
) -> dict[str, Any]:
    """Walk the chain and report the first entry that was altered, removed or reordered;
    with `against`, also whether the chain still holds that checkpoint."""
    kept = Checkpoint.parse(against) if against is not None else None
    return verify_chain(session, against=kept).as_json()
