"""Sending over SMTP (`CHARTER_SMTP_URL`): `smtp://` with optional STARTTLS
(`?starttls=1`), or `smtps://` (TLS from the first byte); user and password for AUTH.

Charter's records of a failure carry the reply code and the enhanced status code (`5.1.1`),
with Charter's own words for them: a server's reply text often repeats the recipient's address.
"""

from __future__ import annotations

import re
import smtplib
import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from charter.mail.mailers import MailConnection, MailFailure, OutgoingMessage

_TRUE = {"1", "true", "yes", "on"}
_ENHANCED = re.compile(r"^([245]\.\d{1,3}\.\d{1,3})\b")
# Charter's words for reply codes; any other is "refused" or "deferred".
_REASONS = {
    421: "service not available",
    450: "mailbox unavailable, try later",
    451: "local error at the server",
    452: "insufficient storage",
    454: "TLS or authentication not available",
    500: "command not recognised",
    501: "syntax error in parameters",
    502: "command not implemented",
    503: "bad sequence of commands",
    504: "parameter not implemented",
    530: "authentication required",
    534: "authentication mechanism too weak",
    535: "authentication failed",
    550: "mailbox unavailable",
    551: "user not local",
    552: "storage allocation exceeded",
    553: "mailbox name not allowed",
    554: "transaction failed",
    556: "domain does not accept mail",
}


class SmtpUrlProblem(ValueError):
    """`CHARTER_SMTP_URL` cannot be used; the message never contains the password."""


@dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int
    implicit_tls: bool
    starttls: bool
    user: str | None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> SmtpServer:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps"):
            raise SmtpUrlProblem("CHARTER_SMTP_URL must start with smtp:// or smtps://")
        try:
            port = parts.port
        except ValueError:
            raise SmtpUrlProblem("CHARTER_SMTP_URL has a port that is not a number") from None
        if not parts.hostname:
            raise SmtpUrlProblem("CHARTER_SMTP_URL names no host")
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        unknown = set(query) - {"starttls"}
        if unknown:
            raise SmtpUrlProblem(f"CHARTER_SMTP_URL has unknown options: {', '.join(unknown)}")
        implicit = parts.scheme == "smtps"
        starttls = query.get("starttls", "0").lower() in _TRUE
        if implicit and starttls:
            raise SmtpUrlProblem("CHARTER_SMTP_URL: smtps:// is TLS already; drop ?starttls=1")
        return cls(
            host=parts.hostname,
            port=port or (465 if implicit else 587 if starttls else 25),
            implicit_tls=implicit,
            starttls=starttls,
            user=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password is not None else None,
        )


def _reason(code: int, message: bytes | str) -> str:
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
    enhanced = _ENHANCED.match(text.strip())
    words = _REASONS.get(code, "refused" if code >= 500 else "deferred")
    return f"{enhanced[1]} {words}" if enhanced else words


def _failure(code: int, message: bytes | str, *, connection_lost: bool = False) -> MailFailure:
    return MailFailure(
        str(code),
        _reason(code, message),
        permanent=500 <= code < 600,
        connection_lost=connection_lost,
    )


class _SmtpConnection:
    def __init__(self, client: smtplib.SMTP) -> None:
        self._client = client

    def send(self, message: OutgoingMessage) -> None:
        try:
            refused = self._client.send_message(
                message.as_email(), from_addr=message.sender, to_addrs=[message.to]
            )
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            raise _failure(code, text) from None
        except smtplib.SMTPServerDisconnected:
            raise MailFailure(
                "disconnected", "the server closed the connection", connection_lost=True
            ) from None
        except smtplib.SMTPResponseException as exc:
            # Sender refused, data refused: the connection stays usable after smtplib's RSET,
            # unless the server said 421 (closing).
            raise _failure(
                exc.smtp_code, exc.smtp_error, connection_lost=exc.smtp_code == 421
            ) from None
        except TimeoutError:
            raise MailFailure(
                "timeout", "the server did not answer in time", connection_lost=True
            ) from None
        except OSError:
            raise MailFailure("network", "the connection failed", connection_lost=True) from None
        if refused:  # pragma: no cover - one recipient a message: refusing it raises above
            code, text = next(iter(refused.values()))
            raise _failure(code, text)

    def close(self) -> None:
        try:
            self._client.quit()
        except (smtplib.SMTPException, OSError):
            self._client.close()


class SmtpMailer:
    """Sends each message to an SMTP server, a batch over one connection."""

    delivered_state = "sent"

    def __init__(self, url: str, *, timeout_s: float = 30.0, ca_file: Path | None = None) -> None:
        self.server = SmtpServer.parse(url)
        self.timeout_s = timeout_s
        self._tls = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)

    def connect(self) -> MailConnection:
        server = self.server
        client: smtplib.SMTP | None = None
        try:
            if server.implicit_tls:
                client = smtplib.SMTP_SSL(
                    server.host, server.port, timeout=self.timeout_s, context=self._tls
                )
            else:
                client = smtplib.SMTP(server.host, server.port, timeout=self.timeout_s)
            client.ehlo()
            if server.starttls:
                client.starttls(context=self._tls)
                client.ehlo()
            if server.user is not None:
                client.login(server.user, server.password or "")
        except smtplib.SMTPAuthenticationError as exc:
            _close(client)
            # Not the message's fault: every message waits until the credentials are fixed.
            raise MailFailure(str(exc.smtp_code), _reason(exc.smtp_code, exc.smtp_error)) from None
        except smtplib.SMTPNotSupportedError:
            _close(client)
            raise MailFailure("tls", "the server offers no STARTTLS or AUTH") from None
        except smtplib.SMTPResponseException as exc:
            _close(client)
            raise MailFailure(str(exc.smtp_code), _reason(exc.smtp_code, exc.smtp_error)) from None
        except ssl.SSLError:
            _close(client)
            raise MailFailure("tls", "the TLS handshake failed") from None
        except TimeoutError:
            _close(client)
            raise MailFailure("timeout", "the server did not answer in time") from None
        except (smtplib.SMTPException, OSError):
            _close(client)
            raise MailFailure("connect", "the server cannot be reached") from None
        return _SmtpConnection(client)


def _close(client: smtplib.SMTP | None) -> None:
    if client is not None:
        client.close()
