"""Mail: messages delivered per second by the outbox's sender to a local SMTP server
(aiosmtpd), against plain smtplib sending the same messages over one connection."""

from __future__ import annotations

import datetime as dt
import secrets
import smtplib
import socket
import time
from collections.abc import Iterator
from typing import Any

from aiosmtpd.controller import Controller

from bench.databases import temporary_sqlite
from bench.harness import Result, Run, benchmark
from charter.clock import SystemClock
from charter.mail.mailers import OutgoingMessage
from charter.mail.outbox import Outbox, message_id_for, queue_message
from charter.mail.rendering import BUSINESS_TRANSFER_NOTICE, render_mail
from charter.mail.sender import Sender
from charter.mail.smtp import SmtpMailer

MESSAGES = 1_000
SENDER = "privacy@omni.example.com"


class _Count:
    def __init__(self) -> None:
        self.received = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802, ARG002 - aiosmtpd's hook and signature
        self.received += 1
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@benchmark("mail.smtp_per_s")
def smtp_per_s(run: Run) -> Iterator[Result]:
    handler = _Count()
    port = _free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        with temporary_sqlite() as (db, _file):
            clock = SystemClock()
            outbox = Outbox(secrets.token_bytes(32), sender=SENDER)
            run.step(f"queueing {MESSAGES} messages")
            with db.writing() as session:
                for n in range(MESSAGES):
                    queue_message(
                        session,
                        clock,
                        outbox,
                        to=f"person{n}@example.com",
                        template=BUSINESS_TRANSFER_NOTICE,
                        context={"acquirer": "Acme Holdings"},
                        idempotency_key=f"bench:{n}",
                    )
            run.step("sending through the outbox's sender")
            sender = Sender(
                db=db,
                mailer=SmtpMailer(f"smtp://127.0.0.1:{port}"),
                clock=clock,
                outbox=outbox,
                send_timeout=dt.timedelta(seconds=30),
            )
            started = time.perf_counter()
            report = sender.send_due()
            charter_s = time.perf_counter() - started
        if report.delivered != MESSAGES:
            raise RuntimeError(f"the sender delivered {report.delivered} of {MESSAGES}")

        run.step("sending the same messages with plain smtplib")
        rendered = render_mail(BUSINESS_TRANSFER_NOTICE, {"acquirer": "Acme Holdings"})
        plain = [
            OutgoingMessage(
                message_id=message_id_for(f"bench:{n}", SENDER),
                sender=SENDER,
                to=f"person{n}@example.com",
                subject=rendered.subject,
                text=rendered.text,
                html=rendered.html,
            ).as_email()
            for n in range(MESSAGES)
        ]
        started = time.perf_counter()
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            for message in plain:
                client.send_message(message)
        anchor_s = time.perf_counter() - started
    finally:
        controller.stop()
    yield Result(
        "mail.smtp_per_s",
        MESSAGES / charter_s,
        "msg/s",
        higher_is_better=True,
        anchor="smtplib, one connection, no outbox",
        anchor_value=MESSAGES / anchor_s,
        target=300,
        note=f"{MESSAGES} messages on SQLite, claimed and marked one by one",
    )
