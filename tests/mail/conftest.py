"""A real SMTP server (aiosmtpd) on a free port, and what it received."""

from __future__ import annotations

import email
import email.policy
import secrets
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from charter.clock import FixedClock
from charter.db import Database
from charter.mail.mailers import Mailer
from charter.mail.outbox import Outbox
from charter.mail.sender import Sender
from tests.certificates import self_signed

SENDER = "privacy@omni.example.com"
USER, PASSWORD = "charter", "s3cret-for-tests"


@dataclass
class Inbox:
    """What the server accepted, in order; `refuse` names recipients it refuses with 550."""

    messages: list[EmailMessage] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self,
        server: Any,  # noqa: ARG002 - aiosmtpd's signature
        session: Any,  # noqa: ARG002
        envelope: Any,
        address: str,
        rcpt_options: Any,  # noqa: ARG002
    ) -> str:
        if address in self.refuse:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802, ARG002
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append(parsed)  # type: ignore[arg-type]  # policy.default: EmailMessage
        return "250 Message accepted for delivery"

    def ids(self) -> list[str]:
        with self.lock:
            return [str(message["Message-ID"]) for message in self.messages]

    def wait_for(self, count: int, *, within_s: float = 10.0) -> None:
        """Poll until `count` messages arrived, or fail at the deadline."""
        deadline = time.monotonic() + within_s
        while len(self.messages) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.messages)} of {count} messages arrived")
            time.sleep(0.01)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class SmtpServer:
    inbox: Inbox
    port: int
    controller: Controller

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.controller.stop()

    def start(self) -> None:
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    server = SmtpServer(inbox, port, controller)
    yield server
    server.controller.stop(no_assert=True)


def _authenticate(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    good = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == USER.encode()
        and auth_data.password == PASSWORD.encode()
    )
    return AuthResult(success=good)


@dataclass
class TlsServer:
    inbox: Inbox
    port: int
    ca_file: Path


@pytest.fixture
def tls_smtp_server(tmp_path: Path) -> Iterator[TlsServer]:
    """aiosmtpd with a self-signed certificate for `localhost`, STARTTLS required, and AUTH
    (LOGIN, PLAIN) required over TLS."""
    cert, key = self_signed(tmp_path, "localhost")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    inbox = Inbox()
    port = free_port()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        server_hostname="localhost",
        tls_context=context,
        require_starttls=True,
        authenticator=_authenticate,
        auth_required=True,
        auth_require_tls=True,
    )
    controller.start()
    yield TlsServer(inbox, port, cert)
    controller.stop(no_assert=True)


@pytest.fixture
def outbox() -> Outbox:
    return Outbox(secrets.token_bytes(32), sender=SENDER)


@pytest.fixture
def make_sender(db: Database, clock: FixedClock, outbox: Outbox) -> Callable[..., Sender]:
    def make(mailer: Mailer, **options: Any) -> Sender:
        return Sender(db=db, mailer=mailer, clock=clock, outbox=outbox, **options)

    return make
