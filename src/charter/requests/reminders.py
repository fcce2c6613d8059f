"""The daily work of rights requests in a running service: the reminder to privacy officers
of what is due within 7 days, and the sweep of records kept past their 24 months.

Both look with a read first and write only when there is something to do, so that a
service asking every few minutes does not take SQLite's write lock each time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from charter.clock import Clock
from charter.db import Database
from charter.mail.models import OutboxMessage
from charter.mail.outbox import Outbox, queue_message
from charter.mail.rendering import MailTemplate
from charter.requests.models import RightsRequest
from charter.requests.service import (
    CLOSED_STATES,
    RECORDS_KEPT_MONTHS,
    due_requests,
    months_before,
    sweep_request_records,
)

REMINDER_MAIL = MailTemplate("charter.requests", "due_reminder")
# What the reminder covers.
DUE_WITHIN = dt.timedelta(days=7)
# The actor the audit log names for the service's own scheduled work.
SCHEDULER = "charter:scheduler"


def _reminder_key(day: dt.date, address: str) -> str:
    return f"requests:due-reminder:{day.isoformat()}:{address}"


def queue_due_reminders(
    session: Session, clock: Clock, outbox: Outbox, *, to: Sequence[str]
) -> int:
    """Queue today's reminder to each of `to` listing the open requests due within 7 days
    (ids, types, deadlines; no personal data); once a day per address, none when nothing is
    due. How many were queued."""
    now = clock.now()
    due = due_requests(session, before=now + DUE_WITHIN)
    if not due:
        return 0
    listed = [
        {
            "id": request.id,
            "type": request.type.replace("_", " "),
            "state": request.state.replace("_", " "),
            "due": request.due_at.date().isoformat(),
            "late": request.due_at < now,
        }
        for request in due
    ]
    for address in to:
        queue_message(
            session,
            clock,
            outbox,
            to=address,
            template=REMINDER_MAIL,
            context={"requests": listed, "day": now.date().isoformat()},
            idempotency_key=_reminder_key(now.date(), address),
        )
    return len(to)


def daily_request_work(db: Database, clock: Clock, outbox: Outbox, *, to: Sequence[str]) -> None:
    """Remind and sweep, if either has anything to do today."""
    now = clock.now()
    cutoff = months_before(now, RECORDS_KEPT_MONTHS)
    with db.reading() as session:
        reminded = not to or all(
            session.scalar(
                select(OutboxMessage.id).where(
                    OutboxMessage.idempotency_key == _reminder_key(now.date(), address)
                )
            )
            is not None
            for address in to
        )
        nothing_due = not due_requests(session, before=now + DUE_WITHIN, limit=1)
        old = session.scalar(
            select(RightsRequest.id)
            .where(RightsRequest.state.in_(CLOSED_STATES), RightsRequest.closed_at < cutoff)
            .limit(1)
        )
    if not (reminded or nothing_due):
        with db.writing() as session:
            queue_due_reminders(session, clock, outbox, to=to)
    if old is not None:
        with db.writing() as session:
            sweep_request_records(session, clock, actor=SCHEDULER)
