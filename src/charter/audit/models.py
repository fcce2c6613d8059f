"""The audit log's tables: the entries, and the single head row that serialises appends."""

from __future__ import annotations

from sqlalchemy import BigInteger, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from charter.db import Base, column_max


class AuditEntry(Base):
    """One thing that was done, by whom, on what, with what outcome; chained by hash.

    Never holds personal data: targets are ids, details are ids, counts and codes.
    """

    __tablename__ = "audit_entries"

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    )
    at: Mapped[str] = mapped_column(String(27), index=True)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(96), index=True)
    target: Mapped[str] = mapped_column(String(200))
    outcome: Mapped[str] = mapped_column(String(32))
    details: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


# The largest sequence number the column holds: what a reader may ask for, too, so that a
# larger number is a 422 instead of an overflow in the driver.
MAX_SEQ = column_max(AuditEntry, "seq")


class AuditHead(Base):
    """The last entry of the chain. Appends lock this one row, so two writers never claim the
    same predecessor (DESIGN.md, "One audit chain, many writers")."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    hash: Mapped[str] = mapped_column(String(64))
