"""Append to the hash-chained audit log, and verify it.

Each entry's hash covers its own fields and the previous entry's hash. Appends run in the
caller's transaction (the same one as the change they record) and lock the head row first.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from charter.audit.models import AuditEntry, AuditHead
from charter.clock import Clock
from charter.db import utc_text

GENESIS = "0" * 64
_SEP = "\x1f"


@dataclass(frozen=True)
class Event:
    """What to record: `action` is `area:subject:verb`; `target` and `details` hold ids only."""

    actor: str
    action: str
    target: str = ""
    outcome: str = "ok"
    details: Mapping[str, Any] | None = None


def canonical_details(details: Mapping[str, Any] | None) -> str:
    return json.dumps(details or {}, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def entry_hash(seq: int, at: str, actor: str, action: str, target: str, outcome: str,
               details: str, prev_hash: str) -> str:
    """The hash of one entry, from its stored fields."""
    text = _SEP.join((str(seq), at, actor, action, target, outcome, details, prev_hash))
    return hashlib.sha256(text.encode()).hexdigest()


def _lock_head(session: Session) -> AuditHead:
    head = session.scalars(select(AuditHead).where(AuditHead.id == 1).with_for_update()).one_or_none()
    if head is None:
        head = AuditHead(id=1, seq=0, hash=GENESIS)
        session.add(head)
    return head


def record(session: Session, clock: Clock, event: Event) -> AuditEntry:
    """Append one entry in the session's transaction; it commits with the change it records."""
    return record_many(session, clock, [event])[-1]


def record_many(session: Session, clock: Clock, events: Iterable[Event]) -> list[AuditEntry]:
    """Append several entries in one transaction, in order."""
    head = _lock_head(session)
    at = utc_text(clock.now())
    seq, prev = head.seq, head.hash
    entries = []
    for event in events:
        seq += 1
        details = canonical_details(event.details)
        digest = entry_hash(seq, at, event.actor, event.action, event.target, event.outcome, details, prev)
        entries.append(AuditEntry(seq=seq, at=at, actor=event.actor, action=event.action,
                                  target=event.target, outcome=event.outcome, details=details,
                                  prev_hash=prev, hash=digest))
        prev = digest
    session.add_all(entries)
    head.seq, head.hash = seq, prev
    return entries


@dataclass(frozen=True)
class Verification:
    """The result of walking the chain: `ok`, how many entries, and the first bad one."""

    ok: bool
    entries: int
    head_hash: str
    first_bad_seq: int | None = None
    reason: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "entries": self.entries, "head_hash": self.head_hash,
                "first_bad_seq": self.first_bad_seq, "reason": self.reason}


def verify_chain(session: Session, *, against: str | None = None, batch: int = 20000) -> Verification:
    """Walk the whole chain; report the first entry that was altered, removed or reordered.

    With `against` (a head hash kept elsewhere by `checkpoint`), also prove that the entry
    which had that hash is still in the chain, unchanged, so nothing before it was rewritten.
    """
    connection = session.connection()
    expected_prev = GENESIS
    expected_seq = 1
    count = 0
    found_checkpoint = against is None
    sha256 = hashlib.sha256
    last_seq = 0
    while True:
        rows = connection.exec_driver_sql(
            "SELECT seq, at, actor, action, target, outcome, details, prev_hash, hash "
            "FROM audit_entries WHERE seq > %(after)s ORDER BY seq LIMIT %(n)s"
            if connection.dialect.paramstyle == "pyformat"
            else "SELECT seq, at, actor, action, target, outcome, details, prev_hash, hash "
            "FROM audit_entries WHERE seq > :after ORDER BY seq LIMIT :n",
            {"after": last_seq, "n": batch},
        ).all()
        if not rows:
            break
        for seq, at, actor, action, target, outcome, details, prev_hash, stored in rows:
            if seq != expected_seq:
                return Verification(False, count, expected_prev, expected_seq,
                                    f"entry {expected_seq} is missing (next is {seq})")
            if prev_hash != expected_prev:
                return Verification(False, count, expected_prev, seq,
                                    f"entry {seq} does not follow entry {seq - 1} (reordered or replaced)")
            text = _SEP.join((str(seq), at, actor, action, target, outcome, details, prev_hash))
            if sha256(text.encode()).hexdigest() != stored:
                return Verification(False, count, expected_prev, seq, f"entry {seq} was altered")
            if not found_checkpoint and stored == against:
                found_checkpoint = True
            expected_prev = stored
            expected_seq += 1
            count += 1
        last_seq = rows[-1][0]
    head = session.get(AuditHead, 1)
    head_seq, head_hash = (head.seq, head.hash) if head else (0, GENESIS)
    if head_seq != count or head_hash != expected_prev:
        return Verification(False, count, expected_prev, count + 1 if head_seq > count else count,
                            f"the chain ends at entry {count} but its head records entry {head_seq} "
                            "(entries were removed from the end, or the head was changed)")
    if not found_checkpoint:
        return Verification(False, count, expected_prev, None,
                            "the checkpoint hash is not in the chain: entries before it were rewritten")
    return Verification(True, count, expected_prev)


def head(session: Session) -> tuple[int, str]:
    """The current (sequence, hash) of the chain's last entry: a checkpoint to keep elsewhere."""
    row = session.get(AuditHead, 1)
    return (row.seq, row.hash) if row else (0, GENESIS)
