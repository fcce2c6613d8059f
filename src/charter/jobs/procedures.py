"""Starting, finding and finishing recorded procedures (see `jobs.models.Procedure`)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from charter.clock import Clock
from charter.jobs.models import Procedure

Kind = Literal["erasure", "master_key_rotation", "reseal"]
State = Literal["started", "done", "abandoned"]


@dataclass(frozen=True)
class Recorded:
    """A procedure as it was recorded."""

    id: str
    kind: str
    subject: str
    state: str
    actor: str
    details: Mapping[str, Any]

    @classmethod
    def of(cls, row: Procedure) -> Recorded:
        return cls(row.id, row.kind, row.subject, row.state, row.actor, json.loads(row.details))


def start_procedure(
    session: Session,
    clock: Clock,
    *,
    kind: Kind,
    subject: str,
    actor: str,
    details: Mapping[str, Any],
) -> Recorded:
    """Record the intent, in the caller's transaction (with its audit entry)."""
    row = Procedure(
        id=secrets.token_hex(16),
        kind=kind,
        subject=subject,
        state="started",
        actor=actor,
        started_at=clock.now(),
        details=json.dumps(dict(details), sort_keys=True),
    )
    session.add(row)
    session.flush()
    return Recorded.of(row)


def unfinished(session: Session, kind: Kind, subject: str | None = None) -> list[Recorded]:
    """The procedures of `kind` still `started` (for `subject`, if given), oldest first."""
    query = select(Procedure).where(Procedure.kind == kind, Procedure.state == "started")
    if subject is not None:
        query = query.where(Procedure.subject == subject)
    return [Recorded.of(row) for row in session.scalars(query.order_by(Procedure.started_at))]


def lock_procedure(session: Session, procedure_id: str) -> Recorded:
    """The procedure's row, locked until the caller's transaction ends: two processes that
    resume it at once take turns, and the second finds it finished."""
    row = session.scalars(
        select(Procedure).where(Procedure.id == procedure_id).with_for_update()
    ).one()
    return Recorded.of(row)


def finish_procedure(
    session: Session,
    clock: Clock,
    procedure_id: str,
    *,
    state: State = "done",
    details: Mapping[str, Any] | None = None,
) -> None:
    """Record the outcome, in the caller's transaction (with its audit entry)."""
    row = session.get(Procedure, procedure_id)
    if row is None:  # pragma: no cover - callers finish procedures they found
        raise LookupError(procedure_id)
    row.state = state
    row.finished_at = clock.now()
    if details is not None:
        row.details = json.dumps({**json.loads(row.details), **details}, sort_keys=True)
