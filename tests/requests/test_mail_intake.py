"""Requests mailed to the legal address (C25), and the correspondence kept (C7): read from a
real IMAP server (Dovecot, see `tests.requests.dovecot`) and from a Maildir, typed by their
words, recorded once per message however often they are delivered or read, each with an
acknowledgement (and, where the type needs one, a verification link that works) mailed to
the sender; hostile mail kept for staff without a crash; the message kept sealed; and the
same through `charter requests ingest-mail` and `charter requests due`."""

from __future__ import annotations

import contextlib
import email.utils
import json
import mailbox
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Protocol

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text
from typer.testing import CliRunner, Result

from charter.cli.main import build_app
from charter.clock import FixedClock
from charter.db import Database
from charter.mail.models import OutboxMessage
from charter.mail.outbox import Outbox, opened
from charter.mail.sender import Sender
from charter.mail.smtp import SmtpMailer
from charter.policy.compiled import CompiledPolicy
from charter.requests.mailbox import (
    MAX_MESSAGE_BYTES,
    ImapServer,
    ImapSource,
    ImapUrlProblem,
    IncomingMail,
    MailboxUnavailable,
    MaildirSource,
    MailIntakeReport,
    MailSource,
    RawMail,
    RecordedMeanwhile,
    ingest_mail,
    record_mail_request,
)
from charter.requests.models import RightsRequest
from charter.requests.service import VERIFY_PATH, Links, verify_by_link
from charter.settings import Settings
from charter.staff.service import add_staff, create_key
from charter.vault.identifiers import BlindIndex
from charter.vault.keystore import KeyStore
from charter.web.app import create_app
from tests.conftest import bearer
from tests.mail import conftest as mail_fixtures
from tests.mail.conftest import SmtpServer
from tests.requests import dovecot as imap_fixtures
from tests.requests.dovecot import Dovecot, needs_dovecot
from tests.test_cli_progress import on_terminal
from tests.vault.test_encryption import found_in, stored_bytes

pytestmark = pytest.mark.clause("C25")

# Fixtures of other modules, used here by name.
smtp_server = mail_fixtures.smtp_server
imap_server = imap_fixtures.dovecot
imap_tls_server = imap_fixtures.dovecot_tls

OMNI = "privacy@omni.example.com"
PUBLIC_URL = "https://privacy.omni.example.com"
# What people write, by the type it asks for.
WORDS = {
    "shine_the_light": (
        "Shine the Light request",
        "Under Cal. Civ. Code 1798.83, tell me whom you shared my data with.",
    ),
    "know_specific": ("My data", "Please send me a copy of my personal information."),
    "know_categories": ("A question", "What information do you hold about me?"),
    "delete": ("Please delete my account", "Erase everything you have on me."),
    "correct": ("Wrong address", "My postal address on file is inaccurate; please rectify it."),
    "opt_out_sale_sharing": ("Do not sell", "Do not sell or share my personal information."),
    "unclear": ("Hello", "I have a question about my last invoice."),
}


def letter(
    subject: str,
    body: str,
    *,
    sender: str = "Ada Lovelace <ada@example.com>",
    message_id: str | None = None,
    headers: dict[str, str] | None = None,
) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "legal@teamomni.com"
    message["Subject"] = subject
    message["Date"] = email.utils.format_datetime(email.utils.localtime())
    message["Message-ID"] = message_id or email.utils.make_msgid(domain="mail.example.com")
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(body)
    return bytes(message)


def address_of(kind: str) -> str:
    return f"{kind.replace('_', '.')}@example.com"


def typed_letters() -> list[bytes]:
    """One message of each type, from an address of its own."""
    return [
        letter(subject, body, sender=address_of(kind), message_id=f"<{kind}@mail.example.com>")
        for kind, (subject, body) in WORDS.items()
    ]


# --- the mailboxes: a real IMAP server and a Maildir pass the same tests ---------------------


class Mailbox(Protocol):
    def deliver(self, *messages: bytes) -> None: ...

    def opened(self) -> contextlib.AbstractContextManager[MailSource]: ...

    def flags(self) -> dict[str, set[str]]: ...

    def mark_all_unread(self) -> None: ...


class ImapMailbox:
    def __init__(self, server: Dovecot) -> None:
        self.server = server

    def deliver(self, *messages: bytes) -> None:
        self.server.deliver(*messages)

    def opened(self) -> contextlib.AbstractContextManager[MailSource]:
        return ImapSource(ImapServer.parse(self.server.url()))

    def flags(self) -> dict[str, set[str]]:
        return self.server.flags()

    def mark_all_unread(self) -> None:
        self.server.mark_all_unread()


_MAILDIR_FLAGS = {"S": "\\Seen", "F": "\\Flagged"}


class LocalMaildir:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._box = mailbox.Maildir(folder, create=True)

    def deliver(self, *messages: bytes) -> None:
        for message in messages:
            self._box.add(message)

    @contextlib.contextmanager
    def opened(self) -> Iterator[MailSource]:
        yield MaildirSource(self.folder)

    def flags(self) -> dict[str, set[str]]:
        found = {}
        for path in sorted((self.folder / "new").iterdir()) + sorted(
            (self.folder / "cur").iterdir()
        ):
            head = path.read_bytes().split(b"\n\n", 1)[0]
            ids = re.findall(rb"(?im)^Message-ID:\s*(\S+)", head)
            flags = path.name.partition(":2,")[2] if path.parent.name == "cur" else ""
            found[ids[0].decode() if ids else ""] = {_MAILDIR_FLAGS[f] for f in flags}
        return found

    def mark_all_unread(self) -> None:
        for path in (self.folder / "cur").iterdir():
            unique, _, flags = path.name.partition(":2,")
            path.rename(path.with_name(f"{unique}:2,{flags.replace('S', '')}"))


@pytest.fixture(
    params=[
        pytest.param("imap", marks=[needs_dovecot, pytest.mark.slow]),
        pytest.param("maildir"),
    ]
)
def inbox(request: pytest.FixtureRequest, tmp_path: Path) -> Mailbox:
    """The legal address's mailbox: served by Dovecot over IMAP, or a Maildir folder."""
    if request.param == "imap":
        return ImapMailbox(request.getfixturevalue("imap_server"))
    return LocalMaildir(tmp_path / "Maildir")


@pytest.fixture
def outbox() -> Outbox:
    return Outbox(secrets.token_bytes(32), sender=OMNI)


@pytest.fixture
def links(keys: KeyStore) -> Links:
    return Links(BlindIndex(keys.index_key()), PUBLIC_URL)


Ingest = Callable[[MailSource], MailIntakeReport]
Intake = Callable[[Mailbox], MailIntakeReport]


@pytest.fixture
def ingest(  # noqa: PLR0917 - the fixtures an intake needs
    db: Database,
    keys: KeyStore,
    clock: FixedClock,
    omni_compiled: CompiledPolicy,
    outbox: Outbox,
    links: Links,
) -> Ingest:
    """`ingest(source)` reads the unread mail of an open source once."""

    def run(source: MailSource) -> MailIntakeReport:
        return ingest_mail(
            db, keys, clock, omni_compiled, source, actor="test", outbox=outbox, links=links
        )

    return run


@pytest.fixture
def intake(ingest: Ingest) -> Intake:
    """`intake(mailbox)` opens the mailbox and reads its unread mail once, as `charter
    requests ingest-mail` does."""

    def run(where: Mailbox) -> MailIntakeReport:
        with where.opened() as source:
            return ingest(source)

    return run


def counts(report: MailIntakeReport) -> tuple[int, int, int, int, int]:
    return (
        report.read,
        report.created,
        report.already_known,
        report.unclear,
        report.kept_for_staff,
    )


def requests_by_type(db: Database) -> dict[str, RightsRequest]:
    with db.reading() as session:
        found = session.scalars(select(RightsRequest)).all()
    by_type = {request.type: request for request in found}
    assert len(by_type) == len(found), "one request per type"
    return by_type


def written(db: Database) -> dict[str, int]:
    """How many rows each table that an intake writes to holds."""
    tables = ("rights_requests", "rights_request_steps", "people", "records", "mail_outbox")
    with db.reading() as session:
        found = {
            table: session.scalar(text(f'SELECT count(*) FROM "{table}"'))  # noqa: S608 - ours
            for table in tables
        }
        found["audit_entries"] = session.scalar(text("SELECT count(*) FROM audit_entries"))
    return {table: int(count or 0) for table, count in found.items()}


def mail_sent(db: Database, outbox: Outbox) -> list[tuple[str, Any]]:
    """(template, message) of every message queued, oldest first."""
    with db.reading() as session:
        rows = session.scalars(select(OutboxMessage).order_by(OutboxMessage.created_at)).all()
    return [(row.template, opened(outbox, row)) for row in rows]


# --- each type, once --------------------------------------------------------------------------


def test_each_type_is_recorded_once_however_often_it_is_read_or_delivered(
    inbox: Mailbox, intake: Intake, db: Database
) -> None:
    inbox.deliver(*typed_letters())

    first = intake(inbox)

    assert counts(first) == (7, 7, 0, 1, 0)
    assert first.types == Counter(dict.fromkeys(WORDS, 1))
    recorded = requests_by_type(db)
    assert set(recorded) == set(WORDS)
    assert {request.channel for request in recorded.values()} == {"email"}
    # An opt-out needs no verification; every other request waits for its link.
    assert recorded["opt_out_sale_sharing"].state == "verified"
    assert recorded["opt_out_sale_sharing"].verification == "not_required"
    assert {r.state for t, r in recorded.items() if t != "opt_out_sale_sharing"} == {
        "awaiting_verification"
    }
    stl = recorded["shine_the_light"]
    assert stl.report_year == stl.received_at.year - 1
    assert (stl.due_at - stl.received_at).days == 30  # at the designated address (C25)
    assert (recorded["delete"].due_at - recorded["delete"].received_at).days == 45
    # Held to the shortest deadline until staff classify it.
    assert (recorded["unclear"].due_at - recorded["unclear"].received_at).days == 30
    assert {str(request.source_key)[:5] for request in recorded.values()} == {"mail:"}
    assert all(flags == {"\\Seen"} for flags in inbox.flags().values())
    before = written(db)

    assert counts(intake(inbox)) == (0, 0, 0, 0, 0)  # nothing unread
    inbox.mark_all_unread()
    again = intake(inbox)
    inbox.deliver(typed_letters()[0])  # the Shine the Light message, delivered a second time
    second_delivery = intake(inbox)

    assert counts(again) == (7, 0, 7, 0, 0)
    assert counts(second_delivery) == (1, 0, 1, 0, 0)
    assert written(db) == before
    assert all(flags == {"\\Seen"} for flags in inbox.flags().values())


@pytest.mark.parametrize(
    ("words", "kind"),
    [
        ("Request under Shine the Light: the categories you disclosed", "shine_the_light"),
        ("California Civil Code 1798.83", "shine_the_light"),
        ("Who got my data for direct marketing?", "shine_the_light"),
        ("A copy of the specific pieces and the categories", "know_specific"),
        ("My right to know", "know_categories"),
        ("I want access to my data", "know_categories"),
        ("Erasure, please", "delete"),
        ("Please correct my name", "correct"),
        ("I opt-out", "opt_out_sale_sharing"),
        ("Don\u2019t share my data", "opt_out_sale_sharing"),
        ("Delete my data and do not sell it", "unclear"),  # two requests: staff decide
        ("Thanks!", "unclear"),
    ],
)
def test_a_message_is_typed_by_its_words_not_by_those_it_quotes(words: str, kind: str) -> None:
    raw = letter(words, "Regards,\n> an earlier message said: please delete\nAda")

    assert IncomingMail.parse(RawMail(raw)).request_type == kind


# --- the replies -------------------------------------------------------------------------------


GRACE, ALAN = "grace@example.com", "alan@example.com"


@needs_dovecot
@pytest.mark.slow
def test_the_sender_gets_an_acknowledgement_and_a_verification_link_that_works(  # noqa: PLR0917
    imap_server: Dovecot,
    intake: Intake,
    db: Database,
    clock: FixedClock,
    outbox: Outbox,
    links: Links,
    smtp_server: SmtpServer,
) -> None:
    imap_server.deliver(
        letter("Delete my data", "Please delete my data.", sender=f"Grace <{GRACE}>"),
        letter("Do not sell", "Do not sell my data.", sender=ALAN),
    )

    intake(ImapMailbox(imap_server))

    sent = mail_sent(db, outbox)
    to_grace = {template: message for template, message in sent if message.to == GRACE}
    to_alan = {template: message for template, message in sent if message.to == ALAN}
    assert set(to_grace) == {"requests:request_received", "requests:verify_request"}
    assert set(to_alan) == {"requests:request_received"}  # an opt-out is not verified
    received = to_grace["requests:request_received"]
    assert received.subject == "OMNI received your deletion request"
    assert "on 2026-11-25. We will answer by 2027-01-09." in received.text  # 45 days
    assert (
        "OMNI received your opt-out of sale or sharing request"
        in to_alan["requests:request_received"].text
    )
    link = re.search(
        re.escape(PUBLIC_URL + VERIFY_PATH) + r"\?token=(\S+)",
        to_grace["requests:verify_request"].text,
    )
    assert link is not None
    with db.writing() as session:
        verified = verify_by_link(session, clock, links, token=link[1], client="test-client")
        assert (verified.type, verified.state) == ("delete", "verified")

    # And they leave: through a real SMTP server, to the address each request came from.
    delivered = Sender(db=db, mailer=SmtpMailer(smtp_server.url), clock=clock, outbox=outbox)
    assert delivered.send_due().delivered == 3
    assert sorted(str(m["To"]) for m in smtp_server.inbox.messages) == [
        "alan@example.com",
        "grace@example.com",
        "grace@example.com",
    ]


# --- hostile mail ------------------------------------------------------------------------------

FIVE_MIB = 5 * 1024 * 1024


def with_attachment(size: int) -> bytes:
    message = EmailMessage()
    message["From"] = "Kim <kim@example.com>"
    message["Subject"] = "Delete my data"
    message["Message-ID"] = "<big@mail.example.com>"
    message.set_content("Please delete all my data; my ID card is attached.")
    message.add_attachment(
        secrets.token_bytes(size), maintype="application", subtype="octet-stream", filename="id.bin"
    )
    return bytes(message)


HOSTILE = {
    # No From at all: nobody to answer.
    "<no-sender@mail.example.com>": (
        b"Subject: no sender\r\nMessage-ID: <no-sender@mail.example.com>\r\n\r\n"
        b"Please delete my data.\r\n"
    ),
    # Two senders: which one would the link go to?
    "<two-senders@mail.example.com>": (
        b"From: a@example.com, b@example.com\r\nSubject: two\r\n"
        b"Message-ID: <two-senders@mail.example.com>\r\n\r\nPlease delete my data.\r\n"
    ),
    # An address no mail reaches.
    "<bad-address@mail.example.com>": (
        b"From: root@localhost\r\nSubject: bad\r\n"
        b"Message-ID: <bad-address@mail.example.com>\r\n\r\nPlease delete my data.\r\n"
    ),
    # A bounce of an earlier reply: answering it would start a loop.
    "<bounce@mail.example.com>": (
        b"From: Mail Delivery System <MAILER-DAEMON@mx.example.com>\r\n"
        b"Subject: Undelivered Mail Returned to Sender\r\nAuto-Submitted: auto-replied\r\n"
        b"Message-ID: <bounce@mail.example.com>\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nYour request to delete was not delivered.\r\n"
        b"--b--\r\n"
    ),
    # Charter's own address: never answered.
    "<own@mail.example.com>": (
        b"From: privacy@omni.example.com\r\nSubject: Confirm your delete request\r\n"
        b"Message-ID: <own@mail.example.com>\r\n\r\nPlease delete.\r\n"
    ),
    # A charset that does not exist, bytes that decode in none, base64 that is not: unclear.
    "<broken-charset@mail.example.com>": (
        b"From: =?x-no-such-charset?B?//79?= <lee@example.com>\r\n"
        b"Subject: =?x-no-such-charset?Q?=FF=FE?= \xff\xfe\r\n"
        b"Message-ID: <broken-charset@mail.example.com>\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: text/plain; charset="x-no-such-charset"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n//79/A==!!not*base64\xff\r\n"
    ),
    "<big@mail.example.com>": with_attachment(FIVE_MIB),
}


def test_hostile_mail_is_kept_for_staff_or_recorded_without_a_crash(  # noqa: PLR0917 - fixtures
    inbox: Mailbox,
    intake: Intake,
    db: Database,
    outbox: Outbox,
    client: TestClient,
    make_key: Callable[[str], str],
) -> None:
    no_message_id = b"From: sam@example.com\r\nSubject: opt out\r\n\r\nI opt out.\r\n"
    garbage = b"\x00\xff\xfe\x80 no header at all \r\n\r\n\xc3\x28"
    inbox.deliver(*HOSTILE.values(), no_message_id, garbage)

    report = intake(inbox)
    inbox.deliver(no_message_id)  # the same bytes again: known by their digest
    again = intake(inbox)

    assert counts(report) == (9, 3, 0, 1, 6)
    assert report.types == Counter({"delete": 1, "unclear": 1, "opt_out_sale_sharing": 1})
    assert report.kept == Counter({"no_sender": 4, "automatic": 1, "own_address": 1})
    assert counts(again) == (1, 0, 1, 0, 0)
    flags = inbox.flags()
    for message_id in HOSTILE:
        kept = message_id not in ("<broken-charset@mail.example.com>", "<big@mail.example.com>")
        assert flags[message_id] == ({"\\Seen", "\\Flagged"} if kept else {"\\Seen"}), message_id
    # Only the senders of what was recorded are answered.
    assert {message.to for _, message in mail_sent(db, outbox)} == {
        "kim@example.com",
        "lee@example.com",
        "sam@example.com",
    }
    # The big message was read up to the cap; what was kept says what was left out.
    with db.reading() as session:
        big = session.scalars(select(RightsRequest).where(RightsRequest.type == "delete")).one()
    used = client.post(
        f"/v1/people/{big.person_id}/use",
        headers=bearer(make_key("service_client")),
        json={"purpose": "service_support", "categories": ["correspondence.message"]},
    )
    assert used.status_code == 200, used.text
    [kept] = [value["value"] for value in used.json()["values"]]
    assert "Please delete all my data; my ID card is attached." in kept
    assert "[1 attachment(s) not kept]" in kept
    assert f"[only the first {MAX_MESSAGE_BYTES} bytes of the message were read]" in kept
    assert len(kept) < MAX_MESSAGE_BYTES


# --- the correspondence, sealed (C7) -----------------------------------------------------------


@pytest.mark.clause("C7")
def test_the_correspondence_is_kept_sealed_and_read_only_through_access(  # noqa: PLR0917
    inbox: Mailbox,
    committed_db: Database,
    keys: KeyStore,
    clock: FixedClock,
    omni_compiled: CompiledPolicy,
    outbox: Outbox,
    links: Links,
    settings: Settings,
) -> None:
    # A database of its own: its files are read below, which on SQLite drops this process's
    # locks on them (POSIX locks go with any descriptor closed), so no other test shares it.
    body = "Zqxwv, please tell me what information you hold about me: zq-marker-7731."
    sender = "zq.sender.7731@example.com"
    message_id = "<zq-message-id-7731@laptop.zq-host-7731.example.com>"
    inbox.deliver(
        letter("Zqxwv request 7731", body, sender=f"Zebulon Quux <{sender}>", message_id=message_id)
    )

    with inbox.opened() as source:
        report = ingest_mail(
            committed_db,
            keys,
            clock,
            omni_compiled,
            source,
            actor="test",
            outbox=outbox,
            links=links,
        )

    assert counts(report) == (1, 1, 0, 0, 0)
    stored = stored_bytes(committed_db.url)  # type: ignore[attr-defined]  # set by the fixture
    assert found_in(stored, ["correspondence", "know_categories"]) == [
        "correspondence",
        "know_categories",
    ]
    secret = [body, "zq-marker-7731", sender, "Zebulon Quux", "Zqxwv request 7731", message_id]
    assert found_in(stored, secret) == []
    # Filed under the person who wrote, and the request with them; read through access only.
    [request] = requests_by_type(committed_db).values()
    with committed_db.writing() as session:
        add_staff(session, clock, omni_compiled, actor="test", name="web", role="service_client")
        key = create_key(session, clock, actor="test", staff_name="web").key
    app = create_app(settings, omni_compiled, committed_db, keys, clock=clock)
    with TestClient(app) as client:
        used = client.post(
            f"/v1/people/{request.person_id}/use",
            headers=bearer(key),
            json={
                "purpose": "service_support",
                "categories": ["correspondence.message", "contact.email", "identity.name"],
            },
        )
    assert used.status_code == 200, used.text
    values = {value["field"]: value["value"] for value in used.json()["values"]}
    assert values["email"] == sender
    assert values["name"] == "Zebulon Quux"
    assert body in values["message"]
    assert "Subject: Zqxwv request 7731" in values["message"]


# --- crashes and races -------------------------------------------------------------------------


class ConnectionDrops:
    """An IMAP source whose connection the server drops after the first message's
    transaction committed, before the message is marked read: the crash between the two."""

    def __init__(self, source: ImapSource, server: Dovecot) -> None:
        self.source = source
        self.server = server

    def unread(self) -> list[str]:
        return list(self.source.unread())

    def read(self, ref: str) -> RawMail | None:
        return self.source.read(ref)

    def mark_read(self, ref: str, *, for_staff: bool) -> None:
        self.server.kick()
        self.source.mark_read(ref, for_staff=for_staff)


@needs_dovecot
@pytest.mark.slow
def test_a_crash_between_the_commit_and_the_seen_flag_records_nothing_twice(
    imap_server: Dovecot, ingest: Ingest, db: Database
) -> None:
    imap_server.deliver(*typed_letters())
    server = ImapServer.parse(imap_server.url())

    with (
        pytest.raises(MailboxUnavailable, match="stopped answering"),
        ImapSource(server) as source,
    ):
        ingest(ConnectionDrops(source, imap_server))
    assert len(requests_by_type(db)) == 1
    with ImapSource(server) as source:
        after = ingest(source)

    assert counts(after) == (7, 6, 1, 1, 0)
    assert set(requests_by_type(db)) == set(WORDS)
    assert all(flags == {"\\Seen"} for flags in imap_server.flags().values())


@needs_dovecot
@pytest.mark.slow
def test_two_intakes_at_once_record_each_message_once(
    imap_server: Dovecot, ingest: Ingest, db: Database
) -> None:
    imap_server.deliver(*typed_letters())
    server = ImapServer.parse(imap_server.url())
    reports: list[MailIntakeReport] = []
    failures: list[BaseException] = []
    start = threading.Barrier(2)

    def run() -> None:
        try:
            with ImapSource(server) as source:
                start.wait(timeout=10)
                reports.append(ingest(source))
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            failures.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert failures == []
    assert sum(report.created for report in reports) == 7
    assert set(requests_by_type(db)) == set(WORDS)
    with db.reading() as session:
        submissions = session.scalar(
            select(func.count(func.distinct(text("submission_id")))).select_from(text("records"))
        )
        acknowledgements = session.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.template == "requests:request_received")
        )
    assert (submissions, acknowledgements) == (7, 7)


def test_a_message_another_run_recorded_meanwhile_is_rolled_back_whole(  # noqa: PLR0917
    db: Database,
    keys: KeyStore,
    clock: FixedClock,
    omni_compiled: CompiledPolicy,
    outbox: Outbox,
    links: Links,
) -> None:
    mail = IncomingMail.parse(RawMail(typed_letters()[3]))
    holding, release = threading.Event(), threading.Event()
    outcomes: list[object] = []

    def record(actor: str, *, hold: bool) -> None:
        try:
            with db.writing() as session:
                done = record_mail_request(
                    session,
                    keys,
                    clock,
                    omni_compiled,
                    actor=actor,
                    mail=mail,
                    outbox=outbox,
                    links=links,
                )
                if hold:
                    holding.set()
                    release.wait(timeout=30)
            outcomes.append(done.replayed)
        except RecordedMeanwhile:
            outcomes.append("recorded meanwhile")

    first = threading.Thread(target=record, args=("first",), kwargs={"hold": True})
    first.start()
    assert holding.wait(timeout=30)
    second = threading.Thread(target=record, args=("second",), kwargs={"hold": False})
    second.start()
    if db.is_sqlite:
        time.sleep(0.3)  # the second waits for SQLite's write lock, then finds the first's
    else:
        waiting_for_first(db)  # the second's insert waits for the first's row
    release.set()
    first.join(timeout=30)
    second.join(timeout=30)

    # On PostgreSQL the second wrote its copy before it met the first's row: all of it goes.
    assert outcomes == [False, True if db.is_sqlite else "recorded meanwhile"]
    assert written(db) | {"audit_entries": 0} == {
        "rights_requests": 1,
        "rights_request_steps": 2,  # received, awaiting verification
        "people": 1,
        "records": 2,  # the sender's address and the message
        "mail_outbox": 2,  # the link and the acknowledgement
        "audit_entries": 0,
    }


def waiting_for_first(db: Database) -> None:
    """Wait until a PostgreSQL transaction waits for a lock another one holds."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with db.reading() as session:
            if session.scalar(text("SELECT count(*) FROM pg_locks WHERE NOT granted")):
                return
        time.sleep(0.02)
    pytest.fail("the second transaction never waited for the first")


# --- the IMAP URL ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("pop3://u:Sekrit-9@127.0.0.1/INBOX", "must start with imap:// or imaps://"),
        ("imap://u@127.0.0.1/INBOX", "needs a user and a password"),
        ("imap://u:Sekrit-9@mail.example.com/INBOX", "would send the password in clear"),
        ("imaps://u:Sekrit-9@mail.example.com/INBOX?starttls=1", "TLS already"),
        ("imap://u:Sekrit-9@127.0.0.1:x/INBOX", "port that is not a number"),
        ("imap://u:Sekrit-9@127.0.0.1/INBOX?verify=0", "unknown options: verify"),
    ],
)
def test_an_imap_url_charter_cannot_use_is_refused_without_its_password(
    url: str, problem: str
) -> None:
    with pytest.raises(ImapUrlProblem) as refused:
        ImapServer.parse(url)

    assert problem in str(refused.value)
    assert "Sekrit-9" not in str(refused.value)


def test_an_imap_url_names_its_server_folder_and_tls() -> None:
    server = ImapServer.parse(
        "imaps://legal%40omni.example:p%40ss%2Fword@imap.example.com/Legal%20Mail"
    )

    assert (server.host, server.port, server.user, server.password, server.folder) == (
        "imap.example.com",
        993,
        "legal@omni.example",
        "p@ss/word",
        "Legal Mail",
    )
    assert server.implicit_tls
    assert "p@ss/word" not in repr(server)
    starttls = ImapServer.parse("imap://u:p@imap.example.com?starttls=1")
    assert (starttls.port, starttls.starttls, starttls.folder) == (143, True, "INBOX")


# --- the commands ------------------------------------------------------------------------------


def cli(env: dict[str, str], *args: str) -> Result:
    # Settings of the developer's own shell must not point the command elsewhere.
    unset: dict[str, str | None] = dict.fromkeys(
        (
            "CHARTER_KEYSTORE_URL",
            "CHARTER_MASTER_KEY",
            "CHARTER_MASTER_KEY_FILE",
            "CHARTER_POLICY",
            "CHARTER_MAILER",
            "CHARTER_IMAP_URL",
        )
    )
    return CliRunner().invoke(
        build_app(), list(args), env={**unset, "COLUMNS": "200", "NO_COLOR": "1", **env}
    )


@pytest.fixture
def home(tmp_path: Path, migrated_url: str, db: Database) -> dict[str, str]:
    """The CHARTER_* settings of a prepared CHARTER_HOME on the test's database (`db`
    empties it after the test)."""
    env = {
        "CHARTER_HOME": str(tmp_path / "home"),
        "CHARTER_DATABASE_URL": migrated_url,
        "CHARTER_MAIL_FROM": OMNI,
    }
    prepared = cli(env, "init")
    assert prepared.exit_code == 0, prepared.output
    return env


def test_charter_requests_ingest_mail_reads_a_maildir_and_due_lists_what_is_due(
    home: dict[str, str], tmp_path: Path
) -> None:
    maildir = LocalMaildir(tmp_path / "Maildir")
    stl, opt_out, delete = (typed_letters()[i] for i in (0, 5, 3))
    maildir.deliver(stl, opt_out, delete, HOSTILE["<no-sender@mail.example.com>"])

    ran = cli(home, "requests", "ingest-mail", "--maildir", str(maildir.folder), "--json")
    again = cli(home, "requests", "ingest-mail", "--maildir", str(maildir.folder))

    assert ran.exit_code == 0, ran.output
    assert json.loads(ran.stdout) == {
        "read": 4,
        "created": 3,
        "already_known": 0,
        "unclear": 0,
        "kept_for_staff": 1,
        "types": {"delete": 1, "opt_out_sale_sharing": 1, "shine_the_light": 1},
        "kept_reasons": {"no_sender": 1},
    }
    assert again.exit_code == 0, again.output
    assert again.stdout.startswith("Read 0 message(s): 0 request(s) created")
    assert sorted(maildir.flags().values(), key=len) == [
        {"\\Seen"},
        {"\\Seen"},
        {"\\Seen"},
        {"\\Seen", "\\Flagged"},
    ]
    assert list((maildir.folder / "new").iterdir()) == []
    queued = json.loads(cli(home, "mail", "outbox", "--json").stdout)["counts"]
    assert queued["queued"] == 5  # three acknowledgements, two links (an opt-out needs none)

    within_week = json.loads(cli(home, "requests", "due", "--json").stdout)
    within_month = json.loads(cli(home, "requests", "due", "--within", "31", "--json").stdout)
    all_due = cli(home, "requests", "due", "--within", "46")

    assert within_week["requests"] == []
    assert within_week["within_days"] == 7
    assert [r["type"] for r in within_month["requests"]] == [
        "opt_out_sale_sharing",  # 15 business days
        "shine_the_light",  # 30 days
    ]
    assert set(within_month["requests"][0]) == {
        "id",
        "type",
        "state",
        "channel",
        "received_at",
        "due_at",
    }
    assert {r["channel"] for r in within_month["requests"]} == {"email"}
    assert all_due.exit_code == 0, all_due.output
    listed = all_due.stdout
    assert listed.index("opt_out_sale_sharing") < listed.index("shine_the_light")
    assert listed.index("shine_the_light") < listed.index("delete")
    assert "example.com" not in all_due.stdout + json.dumps(within_month)
    none = cli(home, "requests", "due", "--within", "0")
    assert none.stdout == "No open request is due within 0 day(s).\n"


@needs_dovecot
@pytest.mark.slow
def test_charter_requests_ingest_mail_reads_imap_and_never_shows_the_password(
    home: dict[str, str], imap_server: Dovecot
) -> None:
    imap_server.deliver(typed_letters()[0])
    with_url = {**home, "CHARTER_IMAP_URL": imap_server.url()}

    ran = cli(with_url, "requests", "ingest-mail", "--json")
    wrong = cli(
        {**home, "CHARTER_IMAP_URL": imap_server.url(password="Wrong-Pa55-42")},
        "requests",
        "ingest-mail",
    )
    plain = cli(home, "requests", "ingest-mail", "--imap", "imap://u:Sekrit-9@mail.example.com/")
    missing = cli(home, "requests", "ingest-mail")

    assert ran.exit_code == 0, ran.output
    assert json.loads(ran.stdout)["created"] == 1
    assert wrong.exit_code == 1
    assert wrong.stderr == (
        f"charter: the IMAP server at 127.0.0.1:{imap_server.port}/INBOX refused the user "
        "and password\n"
    )
    assert (plain.exit_code, missing.exit_code) == (2, 2)
    assert "would send the password in clear" in plain.stderr
    assert "--maildir DIR or --imap URL" in missing.stderr
    for result in (ran, wrong, plain, missing):
        for secret in (imap_server.password, "Wrong-Pa55-42", "Sekrit-9"):
            assert secret not in result.output


def test_charter_requests_ingest_mail_draws_a_bar_on_a_terminal_only(
    home: dict[str, str], tmp_path: Path
) -> None:
    maildir = LocalMaildir(tmp_path / "Maildir")
    maildir.deliver(*typed_letters())

    code, shown = on_terminal(home, "requests", "ingest-mail", "--maildir", str(maildir.folder))
    maildir.mark_all_unread()
    code_json, quiet = on_terminal(
        home, "requests", "ingest-mail", "--maildir", str(maildir.folder), "--json"
    )

    assert code == 0, shown
    assert "Reading mail" in shown
    assert "Read 7 message(s): 7 request(s) created (1 unclear" in shown
    assert code_json == 0, quiet
    assert "Reading mail" not in quiet
    assert json.loads(quiet)["already_known"] == 7


@needs_dovecot
@pytest.mark.slow
@pytest.mark.parametrize("tls", ["imaps", "starttls"])
def test_the_mail_is_read_over_tls_from_a_server_its_certificate_vouches_for(
    imap_tls_server: Dovecot, ingest: Ingest, tls: str
) -> None:
    imap_tls_server.deliver(typed_letters()[0])
    server = ImapServer.parse(imap_tls_server.url(tls=tls))

    with pytest.raises(MailboxUnavailable) as untrusted:
        ImapSource(server).__enter__()
    with ImapSource(server, ca_file=imap_tls_server.certificate) as source:
        report = ingest(source)

    assert f"TLS with the IMAP server at localhost:{server.port}/INBOX failed" in str(
        untrusted.value
    )
    assert imap_tls_server.password not in str(untrusted.value)
    assert counts(report) == (1, 1, 0, 0, 0)
