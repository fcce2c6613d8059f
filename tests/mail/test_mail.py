"""Mail end to end against a real SMTP server (aiosmtpd): queued in the transaction that
causes it, sent after commit, retried while the server is away, never lost, and never sent
twice except the one message a killed sender had in flight (with the same Message-ID)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import select
from typer.testing import CliRunner, Result

from charter.boot import open_keystore
from charter.cli.main import build_app
from charter.clock import FixedClock
from charter.db import Database
from charter.mail.mailers import MailConnection, Mailer, OutboxMailer, OutgoingMessage
from charter.mail.models import OutboxMessage
from charter.mail.outbox import Outbox, message_id_for, queue_message
from charter.mail.rendering import BUSINESS_TRANSFER_NOTICE
from charter.mail.sender import Sender, retry_delay
from charter.mail.smtp import SmtpMailer
from charter.settings import Settings
from charter.vault.identifiers import BlindIndex
from tests.mail.conftest import PASSWORD, SENDER, USER, SmtpServer, TlsServer

ADA = "ada.lovelace@example.com"
MakeSender = Callable[..., Sender]


def queue(db: Database, clock: FixedClock, outbox: Outbox, key: str, to: str = ADA) -> str:
    with db.writing() as session:
        return queue_message(
            session,
            clock,
            outbox,
            to=to,
            template=BUSINESS_TRANSFER_NOTICE,
            context={"acquirer": "Acme <Holdings> & Co"},
            idempotency_key=key,
        )


def rows(db: Database) -> dict[str, OutboxMessage]:
    with db.reading() as session:
        return {row.idempotency_key: row for row in session.scalars(select(OutboxMessage))}


def test_a_message_queued_in_a_transaction_that_rolls_back_is_never_sent(
    db: Database,
    clock: FixedClock,
    outbox: Outbox,
    smtp_server: SmtpServer,
    make_sender: MakeSender,
) -> None:
    class Refused(Exception):
        pass

    with pytest.raises(Refused), db.writing() as session:  # noqa: PT012 - the transaction is what rolls back
        queue_message(
            session,
            clock,
            outbox,
            to=ADA,
            template=BUSINESS_TRANSFER_NOTICE,
            context={"acquirer": "Acme"},
            idempotency_key="transfer:1:person:a",
        )
        raise Refused
    queue(db, clock, outbox, "transfer:1:person:b", to="grace@example.com")

    report = make_sender(SmtpMailer(smtp_server.url)).send_due()

    assert report.delivered == 1
    assert [str(m["To"]) for m in smtp_server.inbox.messages] == ["grace@example.com"]
    assert set(rows(db)) == {"transfer:1:person:b"}


def test_a_committed_message_is_delivered_once_with_its_message_id_text_and_html(
    db: Database,
    clock: FixedClock,
    outbox: Outbox,
    smtp_server: SmtpServer,
    make_sender: MakeSender,
) -> None:
    queue(db, clock, outbox, "transfer:7:person:a")
    # Queued again under the same key (a retried request): still one message.
    queue(db, clock, outbox, "transfer:7:person:a")
    sender = make_sender(SmtpMailer(smtp_server.url))

    assert sender.send_due().delivered == 1
    assert sender.send_due().delivered == 0

    [message] = smtp_server.inbox.messages
    assert message["Message-ID"] == message_id_for("transfer:7:person:a", SENDER)
    assert message["Message-ID"].endswith("@omni.example.com>")
    assert message["From"] == SENDER
    assert message["To"] == ADA
    assert message["Subject"] == "Your data is being transferred to Acme <Holdings> & Co"
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "Your data is being transferred to Acme <Holdings> & Co as part of a business" in text
    assert "sale or merger of OMNI or any division of OMNI" in text
    assert "<strong>Acme &lt;Holdings&gt; &amp; Co</strong>" in html  # autoescaped
    row = rows(db)["transfer:7:person:a"]
    assert (row.state, row.attempts, row.sent_at) == ("sent", 1, clock.now())
    assert row.sealed is None  # sent: the address and the content are dropped


def test_the_recipient_and_content_are_stored_sealed(
    db: Database, clock: FixedClock, outbox: Outbox
) -> None:
    queue(db, clock, outbox, "transfer:8:person:a")
    with db.engine.connect() as connection:
        raw = connection.execute(sa.text("SELECT * FROM mail_outbox")).one()
    stored = b"".join(value if isinstance(value, bytes) else str(value).encode() for value in raw)
    assert ADA.encode() not in stored
    assert b"Acme" not in stored
    assert OutboxMessage.__table__.c.sealed.info["personal_data"]


def test_with_the_server_down_the_message_waits_and_goes_out_when_it_is_back(  # noqa: PLR0917 - fixtures
    db: Database,
    clock: FixedClock,
    outbox: Outbox,
    smtp_server: SmtpServer,
    make_sender: MakeSender,
    caplog: pytest.LogCaptureFixture,
) -> None:
    queue(db, clock, outbox, "transfer:2:person:a")
    smtp_server.stop()
    sender = make_sender(SmtpMailer(smtp_server.url, timeout_s=5))

    with caplog.at_level(logging.WARNING, logger="charter.mail"):
        report = sender.send_due()
    assert (report.delivered, report.retrying) == (0, 1)
    row = rows(db)["transfer:2:person:a"]
    assert (row.state, row.attempts, row.error_code) == ("queued", 1, "connect")
    assert row.next_attempt_at == clock.now() + retry_delay(1)
    assert ADA not in caplog.text
    # Not due yet: nothing is tried.
    assert sender.send_due().retrying == 0

    clock.advance(retry_delay(1))
    assert sender.send_due().retrying == 1
    row = rows(db)["transfer:2:person:a"]
    assert row.attempts == 2
    assert row.next_attempt_at == clock.now() + retry_delay(2) > clock.now() + retry_delay(1)

    smtp_server.start()
    clock.advance(retry_delay(2))
    assert sender.send_due().delivered == 1
    assert smtp_server.inbox.ids() == [message_id_for("transfer:2:person:a", SENDER)]
    assert rows(db)["transfer:2:person:a"].state == "sent"


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs, no `except Exception` catches it."""


@dataclasses.dataclass
class DiesAfterSending:
    """A real SMTP mailer whose process dies right after the server accepted the `nth`
    message, before the sender could mark it sent."""

    real: SmtpMailer
    nth: int
    delivered_state: str = "sent"

    def connect(self) -> MailConnection:
        connection = self.real.connect()
        mailer = self

        class Dying:
            def send(self, message: OutgoingMessage) -> None:
                connection.send(message)
                mailer.nth -= 1
                if mailer.nth == 0:
                    raise Killed

            def close(self) -> None:
                connection.close()

        return Dying()


def test_a_restart_delivers_every_queued_message_and_repeats_only_the_one_in_flight(
    db: Database,
    clock: FixedClock,
    outbox: Outbox,
    smtp_server: SmtpServer,
    make_sender: MakeSender,
) -> None:
    """What is guaranteed: every committed message is delivered at least once; only the
    message that was in flight when a sender died (accepted by the server, not yet marked)
    may be delivered twice, and then with the same Message-ID; all others exactly once.
    Messages a dead sender claimed wait for its lease to run out, never longer."""
    keys = [f"transfer:3:person:{n}" for n in range(10)]
    for key in keys:
        queue(db, clock, outbox, key, to=f"person{keys.index(key)}@example.com")

    with pytest.raises(Killed):
        make_sender(DiesAfterSending(SmtpMailer(smtp_server.url), nth=4)).send_due()
    assert len(smtp_server.inbox.messages) == 4

    # A new process, over the same database: its own engine, sender and mailer.
    again = Database.connect(db.engine.url.render_as_string(hide_password=False))
    try:
        restarted = Sender(db=again, mailer=SmtpMailer(smtp_server.url), clock=clock, outbox=outbox)
        # The dead sender's claim still holds: nothing it claimed is sent yet.
        assert restarted.send_due().delivered == 0
        clock.advance(restarted.send_timeout * 10)  # its lease runs out
        report = restarted.send_due()
    finally:
        again.dispose()

    # The 3 marked sent are not sent again; the 4th (in flight) and the 6 never tried are.
    assert report.delivered == 7
    received = smtp_server.inbox.ids()
    expected = [message_id_for(key, SENDER) for key in keys]
    assert sorted(set(received)) == sorted(expected)
    repeated = [mid for mid in set(received) if received.count(mid) > 1]
    assert repeated == [received[3]]
    assert received.count(received[3]) == 2
    assert {row.state for row in rows(db).values()} == {"sent"}


def test_a_permanent_refusal_is_recorded_as_failed_and_not_tried_again(
    db: Database,
    clock: FixedClock,
    outbox: Outbox,
    smtp_server: SmtpServer,
    make_sender: MakeSender,
) -> None:
    unknown = "nobody@example.invalid"
    smtp_server.inbox.refuse.add(unknown)
    queue(db, clock, outbox, "transfer:4:person:a", to=unknown)
    queue(db, clock, outbox, "transfer:4:person:b")
    sender = make_sender(SmtpMailer(smtp_server.url))

    report = sender.send_due()

    assert (report.delivered, report.failed) == (1, 1)
    row = rows(db)["transfer:4:person:a"]
    assert (row.state, row.error_code, row.error_reason) == (
        "failed",
        "550",
        "5.1.1 mailbox unavailable",
    )
    clock.advance(dt.timedelta(days=1))
    assert sender.send_due().delivered == 0
    assert [str(m["To"]) for m in smtp_server.inbox.messages] == [ADA]


def test_starttls_and_auth_against_a_server_with_a_self_signed_certificate(
    db: Database,
    clock: FixedClock,
    outbox: Outbox,
    tls_smtp_server: TlsServer,
    make_sender: MakeSender,
) -> None:
    queue(db, clock, outbox, "transfer:5:person:a")
    url = f"smtp://{USER}:{PASSWORD}@localhost:{tls_smtp_server.port}?starttls=1"

    # Without the certificate's CA the server is not believed, and nothing is sent.
    untrusting = make_sender(SmtpMailer(url))
    assert untrusting.send_due().retrying == 1
    assert rows(db)["transfer:5:person:a"].error_code == "tls"
    assert tls_smtp_server.inbox.messages == []

    clock.advance(retry_delay(1))
    sender = make_sender(SmtpMailer(url, ca_file=tls_smtp_server.ca_file))
    assert sender.send_due().delivered == 1
    assert tls_smtp_server.inbox.ids() == [message_id_for("transfer:5:person:a", SENDER)]


@pytest.mark.parametrize("kind", ["outbox", "smtp"])
def test_both_mailers_deliver_each_committed_message_once(  # noqa: PLR0917 - fixtures
    kind: str,
    db: Database,
    clock: FixedClock,
    outbox: Outbox,
    smtp_server: SmtpServer,
    make_sender: MakeSender,
) -> None:
    """The contract of a `Mailer`, for the outbox and for SMTP."""
    mailer: Mailer = OutboxMailer() if kind == "outbox" else SmtpMailer(smtp_server.url)
    for n in range(3):
        queue(db, clock, outbox, f"contract:{n}")
    sender = make_sender(mailer, batch=2)  # two batches

    assert sender.send_due().delivered == 3
    assert sender.send_due().delivered == 0
    states = {row.state for row in rows(db).values()}
    assert states == {mailer.delivered_state}
    if kind == "smtp":
        assert len(smtp_server.inbox.messages) == 3
    else:
        assert smtp_server.inbox.messages == []
        assert all(row.sealed is not None for row in rows(db).values())  # kept to be read


def _home(tmp_path: Path, migrated_url: str) -> dict[str, str]:
    env = {"CHARTER_HOME": str(tmp_path / "home"), "CHARTER_DATABASE_URL": migrated_url}
    assert _cli(env, "init").exit_code == 0
    return env


def _cli(env: dict[str, str], *args: str) -> Result:
    unset: dict[str, str | None] = dict.fromkeys(
        (
            "CHARTER_KEYSTORE_URL",
            "CHARTER_MASTER_KEY",
            "CHARTER_MASTER_KEY_FILE",
            "CHARTER_POLICY",
            "CHARTER_MAILER",
            "CHARTER_SMTP_URL",
        )
    )
    return CliRunner().invoke(build_app(), list(args), env={**unset, **env})


def test_charter_mail_send_and_outbox_show_sent_and_failed_messages(
    tmp_path: Path,
    migrated_url: str,
    db: Database,
    clock: FixedClock,
    smtp_server: SmtpServer,
) -> None:
    env = _home(tmp_path, migrated_url)
    settings = Settings.from_env(env)
    keys = open_keystore(settings)
    try:
        key = BlindIndex(keys.index_key()).derived_key("mail-outbox")
    finally:
        keys.engine.dispose()
    home_outbox = Outbox(key, sender=settings.mail_from)
    unknown = "nobody@example.invalid"
    smtp_server.inbox.refuse.add(unknown)
    queue(db, clock, home_outbox, "transfer:6:person:a")
    queue(db, clock, home_outbox, "transfer:6:person:b", to=unknown)

    smtp = {**env, "CHARTER_MAILER": "smtp", "CHARTER_SMTP_URL": smtp_server.url}
    sent = _cli(smtp, "mail", "send", "--json")
    assert sent.exit_code == 0, sent.output
    assert json.loads(sent.output) == {"delivered": 1, "retrying": 0, "failed": 1}

    shown = _cli(env, "mail", "outbox", "--json")
    assert shown.exit_code == 0
    document = json.loads(shown.output)
    assert document["counts"] == {"queued": 0, "sending": 0, "sent": 1, "kept": 0, "failed": 1}
    by_key = {message["idempotency_key"]: message for message in document["messages"]}
    assert by_key["transfer:6:person:b"]["state"] == "failed"
    assert by_key["transfer:6:person:b"]["error"] == {
        "code": "550",
        "reason": "5.1.1 mailbox unavailable",
    }
    assert by_key["transfer:6:person:a"]["state"] == "sent"
    assert by_key["transfer:6:person:a"]["message_id"] == message_id_for(
        "transfer:6:person:a", settings.mail_from
    )
    assert by_key["transfer:6:person:a"]["template"] == "mail:business_transfer_notice"
    # The CLI runs on the real clock, which is past the test clock that queued it.
    assert by_key["transfer:6:person:a"]["sent_at"] > "2026-11-25T12:00:00Z"
    assert ADA not in shown.output
    assert unknown not in shown.output

    table = _cli({**env, "COLUMNS": "200"}, "mail", "outbox", "--state", "failed")
    assert table.exit_code == 0
    assert "550 5.1.1 mailbox unavailable" in table.output
    assert "business_transfer_notice" in table.output
    assert unknown not in table.output
