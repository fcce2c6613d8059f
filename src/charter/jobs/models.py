"""The table of recorded procedures."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from charter.db import Base, UTCDateTime


class Procedure(Base):
    """One piece of work that spans the data and the key store, which no transaction spans:
    its intent is committed (with its audit entry) before it acts, and its completion after.
    A procedure still `started` at a start-up was interrupted, and is finished then."""

    __tablename__ = "procedures"
    __table_args__ = (Index("ix_procedures_kind_state", "kind", "state"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    # What it acts on, as the audit log names it (`person:<id>`, `vault:master_key`).
    subject: Mapped[str] = mapped_column(String(200), index=True)
    state: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Ids and counts only, as JSON.
    details: Mapped[str] = mapped_column(Text)
