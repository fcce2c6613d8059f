"""The rights requests' daily work (C25): privacy officers get one reminder a day of what is
due within 7 days, none when nothing is, and records past their 24 months are swept."""

from __future__ import annotations

import datetime as dt
import secrets

import pytest
from sqlalchemy import select

from charter.clock import FixedClock
from charter.db import Database
from charter.mail.models import OutboxMessage
from charter.mail.outbox import Outbox, opened
from charter.policy.compiled import CompiledPolicy
from charter.requests import service
from charter.requests.reminders import daily_request_work
from charter.requests.service import Intake, submit_request
from charter.vault.identifiers import BlindIndex

pytestmark = pytest.mark.clause("C25")

OFFICERS = ("olivia@example.com", "omar@example.com")


def reminders(db: Database) -> list[OutboxMessage]:
    with db.reading() as session:
        return list(
            session.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.template == "requests:due_reminder")
                .order_by(OutboxMessage.idempotency_key)
            )
        )


def test_one_reminder_a_day_lists_what_is_due_within_a_week(
    db: Database, clock: FixedClock, omni_compiled: CompiledPolicy
) -> None:
    outbox = Outbox(secrets.token_bytes(32), sender="privacy@example.com")
    with db.writing() as session:
        made = submit_request(
            session,
            clock,
            omni_compiled,
            BlindIndex(b"i" * 32),
            actor="test",
            intake=Intake(type="opt_out_sale_sharing", channel="api", email="x@example.com"),
        ).request
        due = made.due_at
    daily_request_work(db, clock, outbox, to=OFFICERS)
    assert reminders(db) == []  # due in 15 business days: not yet

    clock.advance(due - clock.now() - dt.timedelta(days=3))
    daily_request_work(db, clock, outbox, to=OFFICERS)
    daily_request_work(db, clock, outbox, to=OFFICERS)
    sent = reminders(db)
    assert [opened(outbox, row).to for row in sent] == list(OFFICERS)
    text = opened(outbox, sent[0]).text
    assert f"{due.date().isoformat()}: opt out sale sharing, verified — request {made.id}" in text
    assert "x@example.com" not in text

    clock.advance(dt.timedelta(days=1))
    daily_request_work(db, clock, outbox, to=OFFICERS)
    assert len(reminders(db)) == 4


def test_the_daily_work_sweeps_records_past_24_months(
    db: Database, clock: FixedClock, omni_compiled: CompiledPolicy
) -> None:
    outbox = Outbox(secrets.token_bytes(32), sender="privacy@example.com")
    with db.writing() as session:
        made = submit_request(
            session,
            clock,
            omni_compiled,
            BlindIndex(b"i" * 32),
            actor="test",
            intake=Intake(type="delete", channel="public", email="x@example.com"),
        ).request
        service.deny(session, clock, made.id, actor="test", basis="not verified in time")
    clock.advance(dt.timedelta(days=2 * 366))
    daily_request_work(db, clock, outbox, to=())
    with db.reading() as session, pytest.raises(service.NotFound):
        service.get_request(session, made.id)
