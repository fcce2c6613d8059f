"""People and what was collected about them. Personal values are only ever stored sealed.

Each column that holds personal data says so in `info={"personal_data": ...}`;
tests/vault/test_declared_columns.py checks that none is left undeclared.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from charter.db import Base, UTCDateTime

RecordId = BigInteger().with_variant(Integer, "sqlite")


class Person(Base):
    """A visitor, user, job applicant or correspondent, known only by an opaque id."""

    __tablename__ = "people"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    customer_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    # Keyed hash of the normalised e-mail address (a blind index), never the address.
    email_index: Mapped[str | None] = mapped_column(
        String(64), nullable=True, index=True, info={"personal_data": "contact.email (HMAC)"}
    )
    # A visitor (or correspondent) whose history now belongs to the user who signed up from
    # it, or with its e-mail address (C7, C14).
    merged_into: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    erased_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    objected_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class VisitorId(Base):
    """A pseudonymous visitor cookie value, found by its keyed hash (C10)."""

    __tablename__ = "visitor_ids"

    index: Mapped[str] = mapped_column(
        String(64), primary_key=True, info={"personal_data": "cookie.id (HMAC)"}
    )
    person_id: Mapped[str] = mapped_column(ForeignKey("people.id"), index=True)


class Record(Base):
    """One collected value: its field, category, collection point, source and policy version."""

    __tablename__ = "records"

    id: Mapped[int] = mapped_column(RecordId, primary_key=True, autoincrement=False)
    person_id: Mapped[str] = mapped_column(String(32), index=True)
    submission_id: Mapped[str] = mapped_column(String(32), index=True)
    collection_point: Mapped[str] = mapped_column(String(64))
    field: Mapped[str] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(16))
    source_name: Mapped[str | None] = mapped_column(String(64), nullable=True)
    policy_version: Mapped[str] = mapped_column(String(32))
    collected_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    published: Mapped[bool] = mapped_column(Boolean, default=False)
    sealed: Mapped[bytes] = mapped_column(
        LargeBinary, info={"personal_data": "the field's category"}
    )
    # What `sealed` is bound to (vault.sealing): 1, the row and person; 2, its labels too.
    seal_version: Mapped[int] = mapped_column(Integer, server_default="2")


class LogEvent(Base):
    """One automatic event (page view, click); its fields are sealed together (C10, C12)."""

    __tablename__ = "events"

    # Ids come from the database, in insert order: appends stay at the end of the table,
    # which keeps batch inserts fast. `uid` is random and binds the ciphertext to its row.
    id: Mapped[int] = mapped_column(RecordId, primary_key=True, autoincrement=True)
    uid: Mapped[int] = mapped_column(RecordId)
    person_id: Mapped[str] = mapped_column(String(32), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    collection_point: Mapped[str] = mapped_column(String(64))
    policy_version: Mapped[str] = mapped_column(String(32))
    collected_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    sealed: Mapped[bytes] = mapped_column(
        LargeBinary, info={"personal_data": "log data categories"}
    )
    seal_version: Mapped[int] = mapped_column(Integer, server_default="2")


class EventBatch(Base):
    """An accepted batch of events, so that a retried batch is stored once."""

    __tablename__ = "event_batches"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    digest: Mapped[str] = mapped_column(String(64))
    count: Mapped[int] = mapped_column(Integer)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
