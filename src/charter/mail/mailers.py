"""Where messages go: a `Mailer` hands messages over, one connection per batch.

Two implementations, chosen by `CHARTER_MAILER`: `OutboxMailer` (the default) keeps every
message in the outbox table, where `charter mail outbox` shows it; `mail.smtp.SmtpMailer`
sends it to an SMTP server.
"""

from __future__ import annotations

import email.utils
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol


@dataclass(frozen=True)
class OutgoingMessage:
    """A message as it leaves: the same Message-ID on every try."""

    message_id: str
    sender: str
    to: str
    subject: str
    text: str
    html: str

    def as_email(self) -> EmailMessage:
        """The MIME message: plain text and HTML as alternatives."""
        message = EmailMessage()
        message["Message-ID"] = self.message_id
        message["From"] = self.sender
        message["To"] = self.to
        message["Subject"] = self.subject
        message["Date"] = email.utils.formatdate(usegmt=True)
        message.set_content(self.text)
        message.add_alternative(self.html, subtype="html")
        return message


class MailFailure(Exception):
    """A message (or the connection) was not accepted. `code` is the SMTP reply code or a
    word (`connect`, `timeout`, `tls`); `reason` is Charter's short wording, which never
    repeats the server's text (it may name the recipient). A `permanent` failure is not
    tried again; after a `connection_lost` one, the rest of the batch waits for a new try."""

    def __init__(
        self, code: str, reason: str, *, permanent: bool = False, connection_lost: bool = False
    ) -> None:
        super().__init__(f"{code} {reason}")
        self.code = code
        self.reason = reason
        self.permanent = permanent
        self.connection_lost = connection_lost


class MailConnection(Protocol):
    def send(self, message: OutgoingMessage) -> None:
        """Hand `message` over; raises `MailFailure` if it was not accepted."""
        ...

    def close(self) -> None: ...


class Mailer(Protocol):
    """Hands messages over to where they go."""

    @property
    def delivered_state(self) -> str:
        """The state of a message once handed over: `sent`, or `kept` in the outbox."""
        ...

    def connect(self) -> MailConnection:
        """A connection for a batch; raises `MailFailure` (temporary) if there is none."""
        ...


class _Kept:
    def send(self, message: OutgoingMessage) -> None:
        """Nothing to do: the message stays in the outbox table, where it already is."""

    def close(self) -> None:
        return None


class OutboxMailer:
    """Keeps every message in the outbox (state `kept`); nothing leaves the machine."""

    delivered_state = "kept"

    def connect(self) -> MailConnection:
        return _Kept()
