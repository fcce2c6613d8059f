"""The outbox: every message Charter sends, from queued to sent (or failed).

A message's recipient and content are personal data: they are stored sealed (AES-GCM, see
`mail.outbox`), and dropped once the message is sent.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from charter.db import Base, UTCDateTime


class OutboxMessage(Base):
    """One message. `state` is `queued` (waiting for `next_attempt_at`), `sending` (claimed
    by a sender until `claimed_until`), `sent`, `kept` (the outbox mailer keeps it here) or
    `failed` (a permanent refusal, or too many tries; `error_code` and `error_reason` say
    why, in words that name no person)."""

    __tablename__ = "mail_outbox"
    __table_args__ = (Index("ix_mail_outbox_due", "state", "next_attempt_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    # The caller's key for this message (ids only, never an address): a message queued
    # twice under one key is stored once.
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    # The Message-ID header, derived from the idempotency key: every try carries the same.
    message_id: Mapped[str] = mapped_column(String(200))
    template: Mapped[str] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    claimed_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Which sender's claim holds the message; a sender marks only what it still holds.
    claim: Mapped[str | None] = mapped_column(String(32), nullable=True)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # The last failure: an SMTP reply code (`550`) or a word (`connect`, `timeout`), and a
    # short reason chosen by Charter, never the server's text (which may name the recipient).
    error_code: Mapped[str | None] = mapped_column(String(16), nullable=True)
    error_reason: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # The person the message is written to, if it is about one: their queued and kept
    # messages go when they are erased.
    person_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    # Recipient, subject, plain text and HTML, sealed together; None once sent.
    sealed: Mapped[bytes | None] = mapped_column(
        LargeBinary, nullable=True, info={"personal_data": "contact.email and correspondence"}
    )
