"""Queueing messages, and reading the outbox.

`queue_message` runs in the caller's transaction, beside the change that causes the message:
if that transaction rolls back, there is no message; if it commits, the sender sends it
after. The recipient and the content are sealed (AES-256-GCM) under the outbox key, bound to
the message's row, and never written anywhere in clear.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from charter.clock import Clock
from charter.db import column_length, conflict_insert, table_of
from charter.mail.mailers import OutgoingMessage
from charter.mail.models import OutboxMessage
from charter.mail.rendering import MailTemplate, render_mail
from charter.vault.crypto import KEY_BYTES, DecryptionFailed, Sealer

STATES = ("queued", "sending", "sent", "kept", "failed")


# What the outbox's key is derived for, from the key store's index key (see `Outbox`).
OUTBOX_KEY_PURPOSE = "mail-outbox"


class Outbox:
    """Where messages are queued: the From address, and the key that seals and opens them.
    The key is the caller's (the running service derives it from the key store's index
    key); the mail layer keeps none of its own."""

    __slots__ = ("_sealer", "sender")

    def __init__(self, key: bytes, *, sender: str) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError(f"the outbox key must be {KEY_BYTES} bytes")
        # The vault's AES-GCM sealing (a random nonce before each value), bound to the row.
        self._sealer = Sealer(key)
        self.sender = sender

    def seal(self, message_id: str, content: Mapping[str, str]) -> bytes:
        plain = json.dumps(dict(content), ensure_ascii=False).encode()
        return self._sealer.seal(plain, _bound(message_id))

    def open(self, message_id: str, sealed: bytes) -> dict[str, str]:
        try:
            plain = self._sealer.open(sealed, _bound(message_id))
        except DecryptionFailed:
            raise UnreadableMessage("the message does not decrypt here") from None
        content: dict[str, str] = json.loads(plain)
        return content


class UnreadableMessage(Exception):
    """A sealed message does not open under this key, or at this row."""


def _bound(message_id: str) -> bytes:
    return b"mail:v1\x1f" + message_id.encode()


def message_id_for(idempotency_key: str, sender: str) -> str:
    """The Message-ID of the message queued under `idempotency_key`: the same on every try
    and in every process, so that a receiver can tell a repeat from a new message."""
    digest = hashlib.sha256(b"charter-mail\x00" + idempotency_key.encode()).hexdigest()[:40]
    domain = sender.rpartition("@")[2] or "localhost"
    return f"<{digest}@{domain}>"


class BadMessage(ValueError):
    """A message cannot be queued as asked; names the problem, never the recipient."""


def queue_message(
    session: Session,
    clock: Clock,
    outbox: Outbox,
    *,
    to: str,
    template: MailTemplate,
    context: Mapping[str, Any],
    idempotency_key: str,
    person_id: str | None = None,
) -> str:
    """Queue a message in the caller's transaction; the id of its outbox row. Queued again
    under the same `idempotency_key` (ids only, no personal data), it is stored once, and
    the id is the first one's. `person_id` names the person it is written to, whose
    unsent messages go when they are erased (`forget_mail`)."""
    if not idempotency_key or len(idempotency_key) > column_length(
        OutboxMessage, "idempotency_key"
    ):
        raise BadMessage("the idempotency key must be 1 to 200 characters")
    if to.count("@") != 1 or any(c.isspace() or c in '<>,;"' for c in to):
        raise BadMessage("the recipient is not one plain e-mail address")
    rendered = render_mail(template, context)
    row_id = secrets.token_hex(16)
    message_id = message_id_for(idempotency_key, outbox.sender)
    now = clock.now()
    sealed = outbox.seal(
        message_id,
        {
            "sender": outbox.sender,
            "to": to,
            "subject": rendered.subject,
            "text": rendered.text,
            "html": rendered.html,
        },
    )
    insert = conflict_insert(session)(table_of(OutboxMessage)).values(
        id=row_id,
        idempotency_key=idempotency_key,
        message_id=message_id,
        template=template.label,
        state="queued",
        attempts=0,
        created_at=now,
        next_attempt_at=now,
        sealed=sealed,
        person_id=person_id,
    )
    inserted = session.execute(
        insert.on_conflict_do_nothing(index_elements=["idempotency_key"]).returning(
            table_of(OutboxMessage).c.id
        )
    ).scalar()
    if inserted is not None:
        return str(inserted)
    found = session.scalar(
        select(OutboxMessage.id).where(OutboxMessage.idempotency_key == idempotency_key)
    )
    if found is None:  # pragma: no cover - inserted or already there, in this transaction
        raise LookupError(idempotency_key)
    return found


def forget_mail(session: Session, person_ids: Sequence[str]) -> int:
    """Delete the messages written to these people that still hold their address and
    content (queued, being sent, kept or failed), in the caller's transaction; how many. A
    sent message keeps its row, which holds neither any more."""
    deleted = session.execute(
        delete(OutboxMessage).where(
            OutboxMessage.person_id.in_(list(person_ids)), OutboxMessage.state != "sent"
        )
    )
    return int(getattr(deleted, "rowcount", 0) or 0)


def opened(outbox: Outbox, row: OutboxMessage) -> OutgoingMessage:
    """The message of an outbox row, as it leaves."""
    if row.sealed is None:
        raise UnreadableMessage("the message was sent, and its content dropped")
    content = outbox.open(row.message_id, row.sealed)
    return OutgoingMessage(message_id=row.message_id, **content)


@dataclass(frozen=True)
class OutboxEntry:
    """A message as the outbox shows it: no recipient, no content."""

    id: str
    message_id: str
    template: str
    state: str
    attempts: int
    created_at: dt.datetime
    next_attempt_at: dt.datetime
    sent_at: dt.datetime | None
    error_code: str | None
    error_reason: str | None
    idempotency_key: str

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "message_id": self.message_id,
            "idempotency_key": self.idempotency_key,
            "template": self.template,
            "state": self.state,
            "attempts": self.attempts,
            "created_at": self.created_at,
            "next_attempt_at": self.next_attempt_at if self.state == "queued" else None,
            "sent_at": self.sent_at,
            "error": {"code": self.error_code, "reason": self.error_reason}
            if self.error_code is not None
            else None,
        }


def outbox_entries(
    session: Session, *, state: str | None = None, limit: int = 100
) -> list[OutboxEntry]:
    """The newest messages first, in `state` if given."""
    query = select(OutboxMessage).order_by(OutboxMessage.created_at.desc(), OutboxMessage.id.desc())
    if state is not None:
        query = query.where(OutboxMessage.state == state)
    return [
        OutboxEntry(
            id=row.id,
            message_id=row.message_id,
            template=row.template,
            state=row.state,
            attempts=row.attempts,
            created_at=row.created_at,
            next_attempt_at=row.next_attempt_at,
            sent_at=row.sent_at,
            error_code=row.error_code,
            error_reason=row.error_reason,
            idempotency_key=row.idempotency_key,
        )
        for row in session.scalars(query.limit(limit))
    ]


def outbox_counts(session: Session) -> dict[str, int]:
    """How many messages are in each state."""
    rows = session.execute(
        select(OutboxMessage.state, func.count()).group_by(OutboxMessage.state)
    ).all()
    counts = dict.fromkeys(STATES, 0)
    counts.update(dict(rows))
    return counts
