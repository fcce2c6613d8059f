"""Personnel and their API keys (C2: authorised personnel only)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from charter.db import Base, UTCDateTime


class StaffMember(Base):
    """A person or a service that may call Charter, with one role from the policy."""

    __tablename__ = "staff"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # A handle chosen by OMNI ("alice", "web-backend"), not a legal name.
    name: Mapped[str] = mapped_column(
        String(64), unique=True, info={"personal_data": "staff.handle"}
    )
    role: Mapped[str] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    disabled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    keys: Mapped[list[ApiKey]] = relationship(back_populates="staff", order_by="ApiKey.id")


class ApiKey(Base):
    """A bearer key. Only the SHA-256 of its secret is stored; the key is shown once."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_id: Mapped[str] = mapped_column(String(16), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # The staff member who minted the key for its holder, when that was someone else.
    issued_by: Mapped[int | None] = mapped_column(Integer, nullable=True)

    staff: Mapped[StaffMember] = relationship(back_populates="keys")
