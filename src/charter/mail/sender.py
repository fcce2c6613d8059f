"""Sending what is due, after commit: claimed, sent, marked; retried with backoff.

A message is claimed (state `sending`, `claimed_until` a lease, one more attempt counted)
in a transaction of its own before it is handed over, and marked `sent` in another right
after the server accepted it. So a crash loses nothing: a claimed message whose sender died
is claimed again once its lease has run out. And it sends nothing twice but the one message
that was in flight: accepted by the server, not yet marked, when the sender died. That one
goes again with the same Message-ID, by which a receiver tells it is a repeat.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, and_, or_, select, update

from charter.clock import Clock
from charter.db import Database, table_of
from charter.mail.mailers import Mailer, MailFailure, OutboxMailer
from charter.mail.models import OutboxMessage
from charter.mail.outbox import Outbox, UnreadableMessage, opened
from charter.mail.smtp import SmtpMailer
from charter.settings import Settings

log = logging.getLogger("charter.mail")

# The first retry waits this long; each next one twice as long, up to `MAX_RETRY_DELAY`.
FIRST_RETRY_DELAY = dt.timedelta(seconds=30)
MAX_RETRY_DELAY = dt.timedelta(hours=1)
# Messages claimed at once: handed over on one connection.
BATCH = 100
_OUTBOX = table_of(OutboxMessage)


def retry_delay(attempts: int) -> dt.timedelta:
    """How long a message waits after its `attempts`-th try failed for now."""
    doublings = min(max(attempts - 1, 0), 20)
    return min(FIRST_RETRY_DELAY * (1 << doublings), MAX_RETRY_DELAY)


@dataclass
class SendReport:
    """What one run of the sender did."""

    delivered: int = 0
    retrying: int = 0
    failed: int = 0

    def add(self, other: SendReport) -> None:
        self.delivered += other.delivered
        self.retrying += other.retrying
        self.failed += other.failed

    def as_json(self) -> dict[str, int]:
        return {"delivered": self.delivered, "retrying": self.retrying, "failed": self.failed}


@dataclass
class Sender:
    """Sends the outbox's due messages through `mailer`.

    `send_timeout` is the longest one message can take to hand over; the lease of a claim is
    ten of them, and a sender stops handing over a batch while a third of its lease is left,
    so that no other sender claims a message this one may still send.
    """

    db: Database
    mailer: Mailer
    clock: Clock
    outbox: Outbox
    max_attempts: int = 12
    send_timeout: dt.timedelta = dt.timedelta(seconds=30)
    batch: int = BATCH
    _lease: dt.timedelta = field(init=False)

    def __post_init__(self) -> None:
        self._lease = self.send_timeout * 10

    def send_due(self) -> SendReport:
        """Send every message due now, a batch at a time, and return what happened."""
        report = SendReport()
        while True:
            claimed = self._claim()
            if not claimed:
                return report
            report.add(self._hand_over(*claimed))
            if len(claimed[1]) < self.batch:
                return report

    def _claim(self) -> tuple[str, list[OutboxMessage], dt.datetime] | None:
        token = secrets.token_hex(16)
        # Looked at first with a read: a serving process asks every second, and on SQLite a
        # write unit takes the one write lock that the requests of that second wait for.
        with self.db.reading() as session:
            if (
                session.execute(select(_OUTBOX.c.id).where(_due(self.clock.now())).limit(1)).first()
                is None
            ):
                return None
        with self.db.writing() as session:
            now = self.clock.now()
            due = session.scalars(
                select(OutboxMessage)
                .where(_due(now))
                .order_by(OutboxMessage.next_attempt_at, OutboxMessage.created_at)
                .limit(self.batch)
                # Two senders on PostgreSQL claim different messages instead of waiting.
                .with_for_update(skip_locked=True)
            ).all()
            if not due:
                return None
            until = now + self._lease
            session.execute(
                update(_OUTBOX)
                .where(_OUTBOX.c.id.in_([row.id for row in due]))
                .values(
                    state="sending",
                    claim=token,
                    claimed_until=until,
                    attempts=_OUTBOX.c.attempts + 1,
                )
            )
            session.expunge_all()
        return token, list(due), until

    def _hand_over(self, token: str, rows: list[OutboxMessage], until: dt.datetime) -> SendReport:
        report = SendReport()
        try:
            connection = self.mailer.connect()
        except MailFailure as failure:
            for row in rows:
                self._record(token, row, failure, report)
            return report
        try:
            for position, row in enumerate(rows):
                if self.clock.now() + self._lease / 3 > until:
                    self._release(token, rows[position:])
                    break
                try:
                    message = opened(self.outbox, row)
                except UnreadableMessage:
                    self._record(
                        token,
                        row,
                        MailFailure("unreadable", "the message does not open", permanent=True),
                        report,
                    )
                    continue
                try:
                    connection.send(message)
                except MailFailure as failure:
                    self._record(token, row, failure, report)
                    if failure.connection_lost:
                        self._release(token, rows[position + 1 :])
                        break
                    continue
                self._mark_delivered(token, row)
                report.delivered += 1
        finally:
            connection.close()
        return report

    def _mark_delivered(self, token: str, row: OutboxMessage) -> None:
        with self.db.writing() as session:
            session.execute(
                update(_OUTBOX)
                .where(_OUTBOX.c.id == row.id, _OUTBOX.c.claim == token)
                .values(
                    state=self.mailer.delivered_state,
                    sent_at=self.clock.now(),
                    claim=None,
                    claimed_until=None,
                    error_code=None,
                    error_reason=None,
                    # Sent, the address and the content are no longer needed; kept in the
                    # outbox, they are what the outbox is for.
                    **({"sealed": None} if self.mailer.delivered_state == "sent" else {}),
                )
            )

    def _record(
        self, token: str, row: OutboxMessage, failure: MailFailure, report: SendReport
    ) -> None:
        attempts = row.attempts + 1  # counted when it was claimed
        final = failure.permanent or attempts >= self.max_attempts
        reason = failure.reason
        if final and not failure.permanent:
            reason = f"gave up after {attempts} tries: {reason}"
        values: dict[str, object] = {
            "claim": None,
            "claimed_until": None,
            "error_code": failure.code,
            "error_reason": reason[:200],
        }
        if final:
            values["state"] = "failed"
            report.failed += 1
        else:
            values["state"] = "queued"
            values["next_attempt_at"] = self.clock.now() + retry_delay(attempts)
            report.retrying += 1
        with self.db.writing() as session:
            session.execute(
                update(_OUTBOX)
                .where(_OUTBOX.c.id == row.id, _OUTBOX.c.claim == token)
                .values(**values)
            )
        # The message's id and the code only: never the recipient.
        log.warning(
            "mail %s %s: %s %s",
            row.id,
            "failed" if final else "will be tried again",
            failure.code,
            reason,
        )

    def _release(self, token: str, rows: list[OutboxMessage]) -> None:
        """Give back claimed messages not tried: due again at once, the try not counted."""
        if not rows:
            return
        with self.db.writing() as session:
            session.execute(
                update(_OUTBOX)
                .where(_OUTBOX.c.id.in_([row.id for row in rows]), _OUTBOX.c.claim == token)
                .values(
                    state="queued",
                    claim=None,
                    claimed_until=None,
                    attempts=_OUTBOX.c.attempts - 1,
                )
            )


def mailer_for(settings: Settings) -> Mailer:
    """The mailer `CHARTER_MAILER` names."""
    if settings.mailer == "smtp" and settings.smtp_url is not None:
        return SmtpMailer(
            settings.smtp_url, timeout_s=settings.smtp_timeout_s, ca_file=settings.smtp_ca_file
        )
    return OutboxMailer()


def sender_for(settings: Settings, db: Database, clock: Clock, key: bytes) -> Sender:
    """The sender a process runs, as the settings describe it."""
    return Sender(
        db=db,
        mailer=mailer_for(settings),
        clock=clock,
        outbox=Outbox(key, sender=settings.mail_from),
        max_attempts=settings.mail_max_attempts,
        send_timeout=dt.timedelta(seconds=settings.smtp_timeout_s),
    )


def _due(now: dt.datetime) -> ColumnElement[bool]:
    """Messages to send now: waiting or left by a sender whose lease ran out."""
    return and_(
        _OUTBOX.c.state.in_(("queued", "sending")),
        _OUTBOX.c.next_attempt_at <= now,
        or_(_OUTBOX.c.claimed_until.is_(None), _OUTBOX.c.claimed_until <= now),
    )
