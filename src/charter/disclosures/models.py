"""The ledger of disclosures: one row per disclosure request, one per person disclosed.

No personal value is ever stored here: people are named by their opaque ids, staff by their
ids, and what was disclosed by the policy's names (NIST SP 800-53 PM-21, "Accounting of
Disclosures": date, nature, purpose, recipient).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from charter.db import Base, UTCDateTime


class Disclosure(Base):
    """One disclosure or transfer as recorded: to whom, for what, on what ground, by whom."""

    __tablename__ = "disclosures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)
    recipient: Mapped[str] = mapped_column(String(64), index=True)
    purpose: Mapped[str] = mapped_column(String(64), index=True)
    # The leaf categories disclosed, sorted.
    categories: Mapped[list[str]] = mapped_column(JSON)
    country: Mapped[str | None] = mapped_column(String(2), nullable=True)
    ground: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The reference of the subpoena, court order or other legal request: a docket or case
    # number, never the content of the request.
    legal_process: Mapped[str | None] = mapped_column(String(200), nullable=True)
    approver_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    requester_id: Mapped[int] = mapped_column(Integer)
    # How the audit log names the requester (`Actor.ref`): staff id and key id.
    requester: Mapped[str] = mapped_column(String(200))
    policy_version: Mapped[str] = mapped_column(String(32))
    mode: Mapped[str] = mapped_column(String(16))
    requested: Mapped[int] = mapped_column(Integer)
    disclosed: Mapped[int] = mapped_column(Integer)
    excluded: Mapped[int] = mapped_column(Integer)
    # {reason code: how many people were left out for it}; who they were is in
    # `disclosure_exclusions`.
    codes: Mapped[dict[str, int]] = mapped_column(JSON, server_default=text("'{}'"))
    # The stored selection the people came from, if they were not listed in the request.
    selection_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True)
    # SHA-256 of the request, so that a key sent again with another request is refused.
    digest: Mapped[str] = mapped_column(String(64))


class DisclosedPerson(Base):
    """One person's data in one disclosure."""

    __tablename__ = "disclosed_people"

    disclosure_id: Mapped[int] = mapped_column(ForeignKey("disclosures.id"), primary_key=True)
    person_id: Mapped[str] = mapped_column(String(32), primary_key=True, index=True)
    # A disclosure for the recipient's own direct marketing: for the Shine the Light report.
    shine_the_light: Mapped[bool] = mapped_column(Boolean)


class DisclosureExclusion(Base):
    """One person id a disclosure left out, and why, in the order it was asked for."""

    __tablename__ = "disclosure_exclusions"

    disclosure_id: Mapped[int] = mapped_column(ForeignKey("disclosures.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    # As the caller sent it: an id that may name nobody (`person_not_found`).
    person_id: Mapped[str] = mapped_column(String(32))
    code: Mapped[str] = mapped_column(String(64))


class Selection(Base):
    """A list of people stored ahead of a disclosure too large for one request: filled a
    page (or an NDJSON stream) at a time, then named by one disclosure, which uses it up."""

    __tablename__ = "disclosure_selections"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[int] = mapped_column(Integer)
    # Distinct person ids in it so far.
    size: Mapped[int] = mapped_column(Integer)
    # The disclosure that used it; a used selection takes no more people.
    used_by: Mapped[int | None] = mapped_column(Integer, nullable=True)


class SelectedPerson(Base):
    """One person id of a selection; `position` keeps the order they were sent in."""

    __tablename__ = "disclosure_selected_people"
    __table_args__ = (Index("ix_disclosure_selected_people_order", "selection_id", "position"),)

    selection_id: Mapped[str] = mapped_column(
        ForeignKey("disclosure_selections.id"), primary_key=True
    )
    person_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
