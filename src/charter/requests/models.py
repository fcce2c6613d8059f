"""People's rights requests, and each step they went through.

A request row is the record the law asks OMNI to keep for 24 months (11 CCR 7101): when it
came, its type and channel, when and how it was answered, and the basis of a denial. It
holds no personal value once closed: the person is named by id, and the address a request
came from is kept as a blind index (to find the person) and sealed (to answer them) only
while the request is open.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from charter.db import Base, UTCDateTime


class RightsRequest(Base):
    """One request: its type, where it stands, and its deadlines."""

    __tablename__ = "rights_requests"
    __table_args__ = (Index("ix_rights_requests_open_due", "state", "due_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    type: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(24))
    # `api` (an OMNI service), `public` (the person, on the web), `email` (to the legal
    # address), `staff` (entered by a privacy officer).
    channel: Mapped[str] = mapped_column(String(16))
    person_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    # The blind index of the e-mail address the request came from or names; never the address.
    email_index: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)
    # The day the request must be confirmed by (CCPA: 10 business days), if the law sets one.
    confirm_by: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    confirmed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    due_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    verified_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # How the person was verified: `reauthenticated`, `email_link`, `not_required`.
    verification: Mapped[str | None] = mapped_column(String(32), nullable=True)
    extended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    extension_reason: Mapped[str | None] = mapped_column(String(500), nullable=True)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # How it ended, in words chosen by Charter or staff (no personal value): "report sent",
    # "no personal information found", ...; and for a denial, its basis.
    response: Mapped[str | None] = mapped_column(String(500), nullable=True)
    denial_basis: Mapped[str | None] = mapped_column(String(500), nullable=True)
    # For Shine the Light: the calendar year the report covers.
    report_year: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The Message-ID of the e-mail it came in (one request per message), or the caller's
    # idempotency key (one request per key).
    source_key: Mapped[str | None] = mapped_column(String(300), nullable=True, unique=True)
    # The address to answer, sealed (AES-GCM, bound to the request) while the request is
    # open; dropped when it closes.
    reply_sealed: Mapped[bytes | None] = mapped_column(
        LargeBinary, nullable=True, info={"personal_data": "contact.email"}
    )
    # Non-personal facts of the request (the field a correction concerns, counts, ...).
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class RequestStep(Base):
    """One transition of a request, as it happened: from, to, who, when, why."""

    __tablename__ = "rights_request_steps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("rights_requests.id"), index=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    from_state: Mapped[str | None] = mapped_column(String(24), nullable=True)
    to_state: Mapped[str] = mapped_column(String(24))
    actor: Mapped[str] = mapped_column(String(200))
    note: Mapped[str | None] = mapped_column(String(500), nullable=True)
