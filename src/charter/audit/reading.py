"""Reading the audit log, page by page."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from charter.audit.models import AuditEntry


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
    session: Session, *, after: int = 0, limit: int = 100, action: str | None = None
) -> list[EntryView]:
    query = select(AuditEntry).where(AuditEntry.seq > after).order_by(AuditEntry.seq).limit(limit)
    if action is not None:
        query = query.where(AuditEntry.action == action)
    return [
        EntryView(
            e.seq, e.at, e.actor, e.action, e.target, e.outcome, json.loads(e.details), e.hash
        )
        for e in session.scalars(query)
    ]
