"""A person's choices: every change kept, and the current value per topic."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from charter.db import Base, UTCDateTime


class ChoiceChange(Base):
    """One choice as it was made: when, how, under which policy version."""

    __tablename__ = "choice_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[str] = mapped_column(String(32), index=True)
    topic: Mapped[str] = mapped_column(String(80))
    granted: Mapped[bool] = mapped_column(Boolean)
    method: Mapped[str] = mapped_column(String(32))
    policy_version: Mapped[str] = mapped_column(String(32))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class CurrentChoice(Base):
    """The choice in force for one person and topic."""

    __tablename__ = "choices"

    person_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    topic: Mapped[str] = mapped_column(String(80), primary_key=True)
    granted: Mapped[bool] = mapped_column(Boolean)
    method: Mapped[str] = mapped_column(String(32))
    policy_version: Mapped[str] = mapped_column(String(32))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class UsedReceipt(Base):
    """A consent receipt that was taken, so that it widens a choice once only. Kept until it
    would have expired anyway."""

    __tablename__ = "used_consent_receipts"

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    used_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)
