"""Reading the audit log, page by page."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from charter.audit.models import AuditEntry
from charter.db import in_chunks, utc_from_text, utc_text


@dataclass(frozen=True)
class EntryView:
    seq: int
    at: str
    actor: str
    action: str
    target: str
    outcome: str
    details: dict[str, Any]
    hash: str

    def as_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at,
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "outcome": self.outcome,
            "details": self.details,
            "hash": self.hash,
        }


def page_entries(
    session: Session,
    *,
    after: int = 0,
    limit: int = 100,
    action: str | None = None,
    actor: str | None = None,
    target: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> list[EntryView]:
    """Entries after sequence number `after`, in chain order, `limit` at most, that match
    every filter given: this `action`; this `actor`, or one it names the start of (`staff:3`
    matches `staff:3/key:...`); this `target` (`person:<id>`); recorded at `since` or later
    and before `until`."""
    query = select(AuditEntry).where(AuditEntry.seq > after).order_by(AuditEntry.seq).limit(limit)
    if action is not None:
        query = query.where(AuditEntry.action == action)
    if actor is not None:
        query = query.where(
            or_(
                AuditEntry.actor == actor, AuditEntry.actor.startswith(f"{actor}/", autoescape=True)
            )
        )
    if target is not None:
        query = query.where(AuditEntry.target == target)
    # The stored times are `utc_text`, of one width, so they sort as text in time order.
    if since is not None:
        query = query.where(AuditEntry.at >= utc_text(since))
    if until is not None:
        query = query.where(AuditEntry.at < utc_text(until))
    return [
        EntryView(
            e.seq, e.at, e.actor, e.action, e.target, e.outcome, json.loads(e.details), e.hash
        )
        for e in session.scalars(query)
    ]


def next_after(entries: list[EntryView], limit: int) -> int | None:
    """The `after` of the page that follows a page of `limit` entries; None when it was the
    last (a page shorter than asked for)."""
    return entries[-1].seq if entries and len(entries) == limit else None


def last_acted(session: Session, actors: Collection[str]) -> dict[str, dt.datetime]:
    """When each of `actors` last did something the log records; actors that never did are
    left out."""
    found: dict[str, dt.datetime] = {}
    for chunk in in_chunks(list(actors)):
        query = (
            select(AuditEntry.actor, func.max(AuditEntry.at))
            .where(AuditEntry.actor.in_(chunk))
            .group_by(AuditEntry.actor)
        )
        for actor, at in session.execute(query):
            moment = utc_from_text(at)
            if moment is not None:
                found[actor] = moment
    return found
