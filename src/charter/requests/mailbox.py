"""Requests mailed to the legal address (C7, C25): read from a Maildir or an IMAP mailbox.

Each message is read defensively (at most `MAX_MESSAGE_BYTES` of it, whatever its
encoding, headers or attachments: nothing in a message stops the intake), classified by its
words, and recorded in one transaction: the request (one per message, whatever number of
times it is delivered or read), a sealed copy of the correspondence at the policy's
`correspondence` collection point, the verification link and an acknowledgement queued to
the sender. Only after that transaction commits is the message marked read (`\\Seen`), so a
crash leaves it unread and whole, and the next run records it once.

A message with no sender Charter could answer (none, several, a malformed or unreachable
address) or one sent by a machine (a bounce, an auto-reply, Charter's own address) gets no
reply and no request: it is marked read and flagged (`\\Flagged`) in the mailbox, where staff
read it, and counted as kept for staff.
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import hmac
import html.parser
import imaplib
import ipaddress
import os
import re
import socket
import ssl
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email import policy as email_policy
from email.headerregistry import Address
from email.message import Message
from email.parser import BytesParser
from email.utils import getaddresses
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from imap_tools import BaseMailBox, MailBox, MailBoxStartTls, MailBoxUnencrypted
from imap_tools.errors import MailboxFolderSelectError, MailboxLoginError, MailboxStarttlsError
from sqlalchemy import select
from sqlalchemy.orm import Session

from charter.clock import Clock
from charter.db import Database
from charter.errors import CharterError
from charter.mail.outbox import BadMessage, Outbox, queue_message
from charter.policy.compiled import CompiledPolicy
from charter.requests.deadlines import in_words
from charter.requests.models import RightsRequest
from charter.requests.service import RECEIVED_MAIL, Intake, Links, Submitted, submit_request
from charter.vault.collection import Submission, collect
from charter.vault.identifiers import BlindIndex, is_email_address, normalise_email
from charter.vault.keystore import KeyStore

# What is read of one message: its headers and text come first; the rest of a large
# attachment is not needed to classify it or to keep the correspondence.
MAX_MESSAGE_BYTES = 1024 * 1024
# The policy's collection point that keeps the correspondence sent to OMNI (C7).
CORRESPONDENCE_POINT = "correspondence"
# The key the source keys of mailed requests are derived with (see `IncomingMail.source_key`).
SOURCE_KEY_PURPOSE = "mail-intake-source-keys"
_SUBJECT_CHARS = 998
_NAME_CHARS = 200

Progress = Callable[[int, int], None]

# The words of each request type, in the order they win over one another: a Shine the Light
# request speaks of categories too, and a request for a copy of the specific pieces may
# also name the categories. Any other mix of two types, or none, is `unclear`.
_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("shine_the_light", (r"shine the light", r"1798\.83", r"direct marketing")),
    ("know_specific", (r"\bcopy of\b", r"\bspecific pieces\b")),
    (
        "know_categories",
        (r"\bcategories\b", r"\bwhat information\b", r"\bright to know\b", r"\baccess\b"),
    ),
    ("delete", (r"\bdelet(?:e|ion)\b", r"\beras(?:e|ure)\b")),
    ("correct", (r"\bcorrect(?:ion)?\b", r"\brectify\b", r"\binaccurate\b")),
    ("opt_out_sale_sharing", (r"\bopt[ -]?out\b", r"\bdo(?: not|n't) (?:sell|share)\b")),
)
_PATTERNS = tuple((kind, re.compile("|".join(words))) for kind, words in _WORDS)
# How a message sent by a machine says so (RFC 3834); it is never answered, lest two
# auto-responders answer each other for ever.
_MACHINE_SENDERS = frozenset({"mailer-daemon", "postmaster"})
_BULK_PRECEDENCE = frozenset({"bulk", "junk", "auto_reply"})
# The words with which the mail a sender reads says what was received.


# --- Reading one message -----------------------------------------------------------------


@dataclass(frozen=True)
class RawMail:
    """The bytes of one message as read, at most `MAX_MESSAGE_BYTES`; `cut` when there was
    more."""

    data: bytes
    cut: bool = False


@dataclass(frozen=True)
class IncomingMail:
    """What Charter takes from a message: never more than it was able to read."""

    # The one address the message came from, if it is one mail can reach; else None.
    sender: str | None
    name: str | None
    subject: str
    text: str
    message_id: str | None
    # A bounce, an auto-reply, a bulk mailing: nothing a person wrote to be answered.
    automatic: bool
    attachments: int
    cut: bool
    # A digest of the bytes read (line ends aside): names a message without a Message-ID.
    digest: str

    @classmethod
    def parse(cls, raw: RawMail) -> IncomingMail:
        """The message in `raw`, however malformed: what cannot be read is left out."""
        digest = hashlib.sha256(raw.data.replace(b"\r\n", b"\n")).hexdigest()
        try:
            message = BytesParser(policy=email_policy.default).parsebytes(raw.data)
            sender, name = _sender(message)
            text, attachments = _body(message)
            return cls(
                sender=sender,
                name=name,
                subject=_one_line(_header(message, "Subject") or "")[:_SUBJECT_CHARS],
                text=_clean(text),
                message_id=_message_id(_header(message, "Message-ID")),
                automatic=_automatic(message, sender),
                attachments=attachments,
                cut=raw.cut,
                digest=digest,
            )
        except Exception:  # noqa: BLE001 - a hostile message must never stop the intake
            # The parts above keep what they can; this is for what nobody foresaw: no
            # sender is known, so the message goes to staff.
            return cls(None, None, "", "", None, False, 0, raw.cut, digest)

    @property
    def request_type(self) -> str:
        """The type its words ask for (`request_type_of`)."""
        return request_type_of(f"{self.subject}\n{_unquoted(self.text)}")

    def source_key(self, index: BlindIndex) -> str:
        """The request's `source_key`: the same for every delivery of this message and in
        every run, a keyed digest (the Message-ID may carry a name or a host, and is not
        kept in clear) of the sender and the Message-ID, or of the bytes without one. With
        the sender in it, nobody can silence another person's request by reusing its id."""
        what = f"id\x00{self.message_id}" if self.message_id else f"raw\x00{self.digest}"
        sender = normalise_email(self.sender or "")
        mac = hmac.digest(
            index.derived_key(SOURCE_KEY_PURPOSE), f"{sender}\x00{what}".encode(), "sha256"
        )
        return "mail:" + mac.hex()

    def correspondence(self) -> dict[str, str]:
        """The fields of the `correspondence` collection point: the sender, their name, and
        the message as kept, with what was not kept said in words."""
        notes = []
        if self.attachments:
            notes.append(f"[{self.attachments} attachment(s) not kept]")
        if self.cut:
            notes.append(f"[only the first {MAX_MESSAGE_BYTES} bytes of the message were read]")
        kept = "\n\n".join([f"Subject: {self.subject}", self.text.strip(), *notes])
        fields = {"email": self.sender or "", "message": kept}
        if self.name:
            fields["name"] = self.name
        return fields

    def why_not_answered(self, own_address: str) -> str | None:
        """Why this message gets no request and no reply, or None."""
        if self.sender is None:
            return "no_sender"
        if self.automatic:
            return "automatic"
        if normalise_email(self.sender) == normalise_email(own_address):
            return "own_address"
        return None


def request_type_of(text: str) -> str:
    """The request type `text` asks for, by its words; `unclear` when it names none, or two
    that neither wins over (see `_WORDS`)."""
    words = " ".join(
        unicodedata.normalize("NFKC", text).replace("\u2019", "'").replace("-", " ").lower().split()
    )
    found = [kind for kind, pattern in _PATTERNS if pattern.search(words)]
    if "shine_the_light" in found:
        return "shine_the_light"
    if "know_specific" in found and "know_categories" in found:
        found.remove("know_categories")
    return found[0] if len(found) == 1 else "unclear"


def _header(message: Message, name: str) -> str | None:
    """A header's decoded value, or its raw text when the header parser fails on it."""
    try:
        value = message.get(name)
        return None if value is None else str(value)
    except Exception:  # noqa: BLE001 - the stdlib header parser raises on some hostile headers
        for key, raw in message.raw_items():
            if key.lower() == name.lower():
                return str(raw)
        return None


def _sender(message: Message) -> tuple[str | None, str | None]:
    """The one address in From, and its display name, if mail can reach it."""
    addresses: list[tuple[str, str]] = []
    try:
        parsed = message.get("From")
        found = getattr(parsed, "addresses", None)
        if found is not None:
            addresses = [
                (str(a.display_name), str(a.addr_spec)) for a in found if isinstance(a, Address)
            ]
    except Exception:  # noqa: BLE001 - the stdlib header parser raises on some hostile headers
        raw = _header(message, "From")
        addresses = getaddresses([raw]) if raw else []
    if len(addresses) != 1:
        return None, None
    name, address = addresses[0]
    address = address.strip()
    if not _reachable(address):
        return None, None
    return address, (_one_line(name)[:_NAME_CHARS] or None)


def _reachable(address: str) -> bool:
    """An address mail can be sent to and a blind index can find (the outbox's test too)."""
    if address.count("@") != 1 or any(c.isspace() or c in '<>,;"' for c in address):
        return False
    try:
        address.encode("utf-8")
        return is_email_address(address)
    except Exception:  # noqa: BLE001 - the address is the sender's, and may be anything
        return False


def _message_id(value: str | None) -> str | None:
    if not value:
        return None
    bracketed = re.search(r"<[^<>\s]{1,990}>", value)
    if bracketed:
        return bracketed[0]
    words = value.split()
    return words[0][:990] if words else None


def _automatic(message: Message, sender: str | None) -> bool:
    submitted = (_header(message, "Auto-Submitted") or "").split(";")[0].strip().lower()
    precedence = (_header(message, "Precedence") or "").strip().lower()
    local = sender.rpartition("@")[0].lower() if sender else ""
    return (
        (submitted not in ("", "no"))
        or precedence in _BULK_PRECEDENCE
        or local in _MACHINE_SENDERS
        or _content_type(message) == "multipart/report"
        or any(_header(message, name) is not None for name in ("X-Autoreply", "X-Autorespond"))
    )


def _content_type(part: Message) -> str:
    try:
        return part.get_content_type()
    except Exception:  # noqa: BLE001 - a malformed Content-Type reads as RFC 2045's default
        return "text/plain"


def _body(message: Message) -> tuple[str, int]:
    """The message's text (its plain text parts, else its HTML as text) and how many
    attachments it carries, which are not read."""
    plain: list[str] = []
    markup: list[str] = []
    attachments = 0
    # A broken MIME structure keeps the parts read before it broke.
    with contextlib.suppress(Exception):
        for part in message.walk():
            if part.is_multipart():
                continue
            kind = _content_type(part)
            if _disposition(part) == "attachment" or not kind.startswith("text/"):
                attachments += 1
                continue
            (markup if kind == "text/html" else plain).append(_text_of(part))
    if plain:
        return "\n".join(plain), attachments
    return _html_text("\n".join(markup)), attachments


def _disposition(part: Message) -> str | None:
    try:
        return part.get_content_disposition()
    except Exception:  # noqa: BLE001 - a malformed Content-Disposition is no attachment
        return None


def _text_of(part: Message) -> str:
    """A text part, decoded by its charset, or as UTF-8 with replacements when its charset
    is unknown or lies."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        codecs.lookup(charset)
        return payload.decode(charset, errors="replace")
    except (LookupError, UnicodeError, ValueError, TypeError):
        return payload.decode("utf-8", errors="replace")


class _HtmlText(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:  # noqa: ARG002 - HTMLParser's signature
        if tag in ("script", "style"):
            self._skipping += 1
        elif tag in ("br", "p", "div", "li", "tr"):
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skipping:
            self._skipping -= 1

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def _html_text(markup: str) -> str:
    if not markup:
        return ""
    reader = _HtmlText()
    with contextlib.suppress(Exception):  # hostile HTML keeps the text read before it
        reader.feed(markup)
        reader.close()
    return "".join(reader.parts)


def _one_line(value: str) -> str:
    return _clean(" ".join(value.split()))


def _clean(value: str) -> str:
    """`value` as UTF-8 can hold it: the parser keeps undecodable bytes of a header as lone
    surrogates, which no encoder (nor the sealing after it) takes."""
    return value.encode("utf-8", errors="replace").decode("utf-8")


def _unquoted(text: str) -> str:
    """The text without the lines it quotes (`> ...`): a reply to Charter's own mail quotes
    its words, which name the request."""
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith(">"))


# --- Where messages come from --------------------------------------------------------------


class MailboxUnavailable(Exception):
    """A mailbox cannot be read; the message names it, never a password."""


class MailSource(Protocol):
    """A mailbox: the unread messages, each read and then marked read once recorded."""

    def unread(self) -> Sequence[str]:
        """References of the unread messages, oldest first."""
        ...

    def read(self, ref: str) -> RawMail | None:
        """At most `MAX_MESSAGE_BYTES` of the message; None if it is gone since."""
        ...

    def mark_read(self, ref: str, *, for_staff: bool) -> None:
        """Mark the message read; `for_staff` also flags it for a person to read."""
        ...


class MaildirSource:
    """A Maildir folder (`new/`, `cur/`, `tmp/`), as Maildir readers share one: a message is
    unread while it is in `new/` or has no `S` flag in `cur/`, and is marked read by being
    renamed into `cur/` with `S` (and `F`, flagged, for staff) in its name's flags.

    `mailbox.Maildir` of Python 3.11 and 3.12 lists and reads messages, but sets a flag only
    by reading the whole message and writing it again; so the names are read here."""

    def __init__(self, folder: Path) -> None:
        if not all((folder / sub).is_dir() for sub in ("new", "cur")):
            raise MailboxUnavailable(f"{folder} is not a Maildir (it needs new/ and cur/)")
        self.folder = folder

    def unread(self) -> Sequence[str]:
        found = []
        for sub in ("new", "cur"):
            for entry in os.scandir(self.folder / sub):
                if entry.name.startswith(".") or not entry.is_file():
                    continue
                _, _, flags = _maildir_info(entry.name)
                if sub == "new" or "S" not in flags:
                    found.append(f"{sub}/{entry.name}")
        # A Maildir name starts with its delivery time: names sort in arrival order.
        return sorted(found, key=lambda ref: ref.split("/", 1)[1])

    def read(self, ref: str) -> RawMail | None:
        try:
            with (self.folder / ref).open("rb") as file:
                data = file.read(MAX_MESSAGE_BYTES + 1)
        except FileNotFoundError:
            return None
        return RawMail(data[:MAX_MESSAGE_BYTES], cut=len(data) > MAX_MESSAGE_BYTES)

    def mark_read(self, ref: str, *, for_staff: bool) -> None:
        name = ref.split("/", 1)[1]
        unique, _, flags = _maildir_info(name)
        wanted = "".join(sorted(set(flags) | {"S"} | ({"F"} if for_staff else set())))
        with contextlib.suppress(FileNotFoundError):  # another reader moved it first
            (self.folder / ref).rename(self.folder / "cur" / f"{unique}:2,{wanted}")


def _maildir_info(name: str) -> tuple[str, str, str]:
    """A Maildir file name's unique part, its info's version and its flags."""
    unique, _, info = name.partition(":")
    version, _, flags = info.partition(",")
    return unique, version, flags if version == "2" else ""


_IMAP_TRUE = {"1", "true", "yes", "on"}


class ImapUrlProblem(ValueError):
    """An IMAP URL Charter cannot use; the message never contains the URL (nor its
    password)."""


@dataclass(frozen=True)
class ImapServer:
    """An IMAP mailbox: `imaps://user:password@host:993/INBOX` (TLS from the first byte),
    `imap://user:password@host:143/INBOX?starttls=1` (STARTTLS), or plain `imap://` to a
    loopback address only. User, password and folder are percent-encoded."""

    host: str
    port: int
    user: str
    password: str = field(repr=False)
    folder: str = "INBOX"
    implicit_tls: bool = False
    starttls: bool = False

    @classmethod
    def parse(cls, url: str, *, name: str = "the IMAP URL") -> ImapServer:
        parts = urlsplit(url.strip())
        if parts.scheme not in ("imap", "imaps"):
            raise ImapUrlProblem(f"{name} must start with imap:// or imaps://")
        try:
            port = parts.port
        except ValueError:
            raise ImapUrlProblem(f"{name} has a port that is not a number") from None
        if not parts.hostname:
            raise ImapUrlProblem(f"{name} names no host")
        if not parts.username or parts.password is None:
            raise ImapUrlProblem(f"{name} needs a user and a password: imap://user:pass@host")
        options = dict(part.partition("=")[::2] for part in parts.query.split("&") if part)
        unknown = set(options) - {"starttls"}
        if unknown:
            raise ImapUrlProblem(f"{name} has unknown options: {', '.join(sorted(unknown))}")
        implicit = parts.scheme == "imaps"
        starttls = options.get("starttls", "0").lower() in _IMAP_TRUE
        if implicit and starttls:
            raise ImapUrlProblem(f"{name}: imaps:// is TLS already; drop ?starttls=1")
        if not implicit and not starttls and not _loopback(parts.hostname):
            raise ImapUrlProblem(
                f"{name} would send the password in clear to another machine: use imaps:// "
                "or ?starttls=1 (plain imap:// is for a loopback address only)"
            )
        return cls(
            host=parts.hostname,
            port=port or (993 if implicit else 143),
            user=unquote(parts.username),
            password=unquote(parts.password),
            folder=unquote(parts.path.lstrip("/")) or "INBOX",
            implicit_tls=implicit,
            starttls=starttls,
        )

    @property
    def where(self) -> str:
        """How messages name the mailbox: no user, no password."""
        return f"{self.host}:{self.port}/{self.folder}"


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_FETCH_PARTS = f"(RFC822.SIZE BODY.PEEK[]<0.{MAX_MESSAGE_BYTES}>)"
_SIZE = re.compile(rb"RFC822\.SIZE (\d+)")


class ImapSource:
    """The unread messages (`UNSEEN`) of an IMAP folder. A message is read with `PEEK` (which
    leaves it unread) and at most `MAX_MESSAGE_BYTES` of it, and marked `\\Seen` (and
    `\\Flagged` for staff) once recorded. Used as a context manager: logged in inside."""

    def __init__(
        self, server: ImapServer, *, timeout_s: float = 30, ca_file: Path | None = None
    ) -> None:
        self.server = server
        self._timeout_s = timeout_s
        self._ca_file = ca_file
        self._box: BaseMailBox | None = None

    def __enter__(self) -> ImapSource:
        server = self.server
        try:
            context = ssl.create_default_context(cafile=self._ca_file)
            box: BaseMailBox
            if server.implicit_tls:
                box = MailBox(
                    server.host, server.port, timeout=self._timeout_s, ssl_context=context
                )
            elif server.starttls:
                box = MailBoxStartTls(
                    server.host, server.port, timeout=self._timeout_s, ssl_context=context
                )
            else:
                box = MailBoxUnencrypted(server.host, server.port, timeout=self._timeout_s)
        except ssl.SSLError as exc:
            raise MailboxUnavailable(
                f"TLS with the IMAP server at {server.where} failed: {exc.reason or 'refused'}"
            ) from None
        except MailboxStarttlsError:
            raise MailboxUnavailable(
                f"the IMAP server at {server.where} refused STARTTLS"
            ) from None
        except (OSError, imaplib.IMAP4.error) as exc:
            raise MailboxUnavailable(
                f"cannot connect to the IMAP server at {server.where}: {_network_reason(exc)}"
            ) from None
        try:
            box.login(server.user, server.password, initial_folder=None)
        except (MailboxLoginError, imaplib.IMAP4.error, UnicodeError):
            _close(box)
            raise MailboxUnavailable(
                f"the IMAP server at {server.where} refused the user and password"
            ) from None
        except OSError as exc:
            _close(box)
            raise _stopped(server, exc) from None
        try:
            box.folder.set(server.folder)
        except (MailboxFolderSelectError, imaplib.IMAP4.error):
            _close(box)
            raise MailboxUnavailable(
                f"the IMAP server at {server.where} has no folder {server.folder!r}"
            ) from None
        except OSError as exc:
            _close(box)
            raise _stopped(server, exc) from None
        self._box = box
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._box is not None:
            _close(self._box)
            self._box = None

    @property
    def _client(self) -> imaplib.IMAP4:
        if self._box is None:
            raise RuntimeError("the IMAP source is used outside its `with` block")
        client: imaplib.IMAP4 = self._box.client
        return client

    def _command(self, *args: str) -> list[Any]:
        try:
            status, data = self._client.uid(*args)
        except (OSError, imaplib.IMAP4.error) as exc:
            raise _stopped(self.server, exc) from None
        if status != "OK":
            raise MailboxUnavailable(
                f"the IMAP server at {self.server.where} refused {args[0]} ({status})"
            )
        return list(data)

    def unread(self) -> Sequence[str]:
        found = self._command("SEARCH", "UNSEEN")
        return [uid.decode() for uid in (found[0] or b"").split()] if found else []

    def read(self, ref: str) -> RawMail | None:
        for item in self._command("FETCH", ref, _FETCH_PARTS):
            if isinstance(item, tuple) and len(item) == 2:
                head, data = item
                size = _SIZE.search(head)
                whole = int(size[1]) if size else len(data)
                return RawMail(bytes(data), cut=whole > len(data))
        return None

    def mark_read(self, ref: str, *, for_staff: bool) -> None:
        flags = r"(\Seen \Flagged)" if for_staff else r"(\Seen)"
        self._command("STORE", ref, "+FLAGS", flags)


def _stopped(server: ImapServer, exc: BaseException) -> MailboxUnavailable:
    return MailboxUnavailable(
        f"the IMAP server at {server.where} stopped answering: {_network_reason(exc)}"
    )


def _close(box: BaseMailBox) -> None:
    """Log out, or when the server hung up already, close the socket all the same (imaplib
    closes it only after a LOGOUT that was answered)."""
    try:
        box.logout()
    except Exception:  # noqa: BLE001 - leaving: whatever the server says no longer matters
        with contextlib.suppress(OSError):
            box.client.shutdown()


def _network_reason(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return "unknown host"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return "the connection failed"


# --- Recording -----------------------------------------------------------------------------


class RecordedMeanwhile(Exception):
    """Another run recorded the same message between this one's look and its insert: the
    caller's transaction must roll back the copy it began."""


@dataclass
class MailIntakeReport:
    """What one run did: messages read; requests created (`unclear` of them untyped,
    awaiting staff); messages recorded before (`already_known`); and messages that are no
    request, flagged in the mailbox for staff (`kept_for_staff`, with why)."""

    read: int = 0
    created: int = 0
    already_known: int = 0
    unclear: int = 0
    kept_for_staff: int = 0
    types: Counter[str] = field(default_factory=Counter)
    kept: Counter[str] = field(default_factory=Counter)

    def as_json(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "created": self.created,
            "already_known": self.already_known,
            "unclear": self.unclear,
            "kept_for_staff": self.kept_for_staff,
            "types": dict(sorted(self.types.items())),
            "kept_reasons": dict(sorted(self.kept.items())),
        }


def record_mail_request(
    session: Session,
    keys: KeyStore,
    clock: Clock,
    policy: CompiledPolicy,
    *,
    actor: str,
    mail: IncomingMail,
    outbox: Outbox,
    links: Links,
) -> Submitted:
    """In the caller's transaction: keep the correspondence (sealed, filed under the
    sender's correspondent, C7), record the request it makes once per message (the
    verification link queued to the sender), and queue the acknowledgement. A message
    recorded before returns its request, replayed, and records nothing."""
    if mail.sender is None:
        raise ValueError("a message without a sender is kept for staff, not recorded")
    index = BlindIndex(keys.index_key())
    key = mail.source_key(index)
    earlier = session.scalars(
        select(RightsRequest).where(RightsRequest.source_key == key)
    ).one_or_none()
    if earlier is not None:
        return Submitted(earlier, replayed=True)
    # First, so that the request finds the correspondent (by the address's blind index).
    collect(
        session,
        keys,
        clock,
        policy,
        actor=actor,
        submission=Submission(collection_point=CORRESPONDENCE_POINT, fields=mail.correspondence()),
    )
    submitted = submit_request(
        session,
        clock,
        policy,
        index,
        actor=actor,
        intake=Intake(type=mail.request_type, channel="email", email=mail.sender, source_key=key),
        outbox=outbox,
        links=links,
    )
    if submitted.replayed:
        raise RecordedMeanwhile(key)
    request = submitted.request
    queue_message(
        session,
        clock,
        outbox,
        to=mail.sender,
        template=RECEIVED_MAIL,
        context={
            "kind": in_words(request.type),
            "received": request.received_at.date().isoformat(),
            "due": request.due_at.date().isoformat(),
        },
        idempotency_key=f"request:{request.id}:received",
        person_id=request.person_id,
    )
    return submitted


def ingest_mail(
    db: Database,
    keys: KeyStore,
    clock: Clock,
    policy: CompiledPolicy,
    source: MailSource,
    *,
    actor: str,
    outbox: Outbox,
    links: Links,
    progress: Progress | None = None,
) -> MailIntakeReport:
    """Record the request of each unread message of `source`, a transaction each, and mark
    it read after its commit; see the module's description. `progress(done, total)` is told
    after each message."""
    report = MailIntakeReport()
    pending = source.unread()
    for done, ref in enumerate(pending, start=1):
        raw = source.read(ref)
        if raw is not None:
            report.read += 1
            mail = IncomingMail.parse(raw)
            kept = _record(db, keys, clock, policy, actor, mail, outbox, links, report)
            source.mark_read(ref, for_staff=kept)
        if progress is not None:
            progress(done, len(pending))
    return report


def _record(  # noqa: PLR0917 - the parts of one intake, passed on from `ingest_mail`
    db: Database,
    keys: KeyStore,
    clock: Clock,
    policy: CompiledPolicy,
    actor: str,
    mail: IncomingMail,
    outbox: Outbox,
    links: Links,
    report: MailIntakeReport,
) -> bool:
    """Record one message and count it; whether it is kept for staff."""
    reason = mail.why_not_answered(outbox.sender)
    if reason is None:
        try:
            with db.writing() as session:
                submitted = record_mail_request(
                    session,
                    keys,
                    clock,
                    policy,
                    actor=actor,
                    mail=mail,
                    outbox=outbox,
                    links=links,
                )
        except RecordedMeanwhile:
            report.already_known += 1
            return False
        except CharterError as refused:
            reason = refused.code
        except BadMessage:
            reason = "unanswerable_address"
        else:
            if submitted.replayed:
                report.already_known += 1
            else:
                report.created += 1
                report.types[submitted.request.type] += 1
                report.unclear += submitted.request.type == "unclear"
            return False
    report.kept_for_staff += 1
    report.kept[reason] += 1
    return True
