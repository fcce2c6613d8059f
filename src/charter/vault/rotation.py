"""Rotating the master key as a recorded procedure: its intent is audited before the key
store is re-wrapped, and its outcome after, so an interrupted rotation is accounted for at the
next start (done, if the new key is the one in use; abandoned, if the old one still is)."""

from __future__ import annotations

import hashlib

from charter.audit.chain import Event, record
from charter.clock import Clock
from charter.db import Database
from charter.jobs.procedures import (
    Recorded,
    finish_procedure,
    lock_procedure,
    start_procedure,
    unfinished,
)

SUBJECT = "vault:master_key"


def fingerprint(master: bytes) -> str:
    """A short name for a master key that reveals nothing of it."""
    return hashlib.sha256(b"charter master key fingerprint\x00" + master).hexdigest()[:16]


def start_rotation(db: Database, clock: Clock, *, actor: str, old: bytes, new: bytes) -> Recorded:
    """Record that a rotation from `old` to `new` begins."""
    with db.writing() as session:
        procedure = start_procedure(
            session,
            clock,
            kind="master_key_rotation",
            subject=SUBJECT,
            actor=actor,
            details={"old": fingerprint(old), "new": fingerprint(new)},
        )
        record(
            session,
            clock,
            Event(
                actor,
                "vault:master_key:rotation_started",
                SUBJECT,
                details={"procedure": procedure.id, "new_key": fingerprint(new)},
            ),
        )
    return procedure


def finish_rotation(
    db: Database, clock: Clock, procedure: Recorded, *, keys: int | None, resumed: bool = False
) -> bool:
    """Record that the key store is re-wrapped under the new key (`keys` of them, if known);
    False if another process recorded the rotation's outcome first."""
    with db.writing() as session:
        # Processes starting at once all find the rotation unfinished: locked, they take
        # turns, and only the first records its outcome.
        if lock_procedure(session, procedure.id).state != "started":
            return False
        finish_procedure(session, clock, procedure.id, details={"keys": keys})
        record(
            session,
            clock,
            Event(
                procedure.actor,
                "vault:master_key:rotated",
                SUBJECT,
                details={"procedure": procedure.id, "keys": keys, "resumed": resumed},
            ),
        )
    return True


def settle_rotations(db: Database, clock: Clock, master: bytes, *, abandon: bool) -> int:
    """Account for rotations whose outcome was not recorded: done where `master` (the key
    in use) is their new key; with `abandon`, the others are recorded as abandoned (only
    when no rotation can be running: `charter keys rotate-master` found none under way).
    Returns how many were settled."""
    with db.reading() as session:
        pending = unfinished(session, "master_key_rotation")
    in_use = fingerprint(master)
    settled = 0
    for procedure in pending:
        if procedure.details.get("new") == in_use:
            settled += finish_rotation(db, clock, procedure, keys=None, resumed=True)
        elif abandon:
            settled += _abandon_rotation(db, clock, procedure)
    return settled


def _abandon_rotation(db: Database, clock: Clock, procedure: Recorded) -> bool:
    with db.writing() as session:
        if lock_procedure(session, procedure.id).state != "started":
            return False  # settled by another process meanwhile
        finish_procedure(session, clock, procedure.id, state="abandoned")
        record(
            session,
            clock,
            Event(
                procedure.actor,
                "vault:master_key:rotation_abandoned",
                SUBJECT,
                outcome="failed",
                details={"procedure": procedure.id},
            ),
        )
    return True
