"""Append to the hash-chained audit log, and verify it.

Each entry's hash covers its own fields and the previous entry's hash. Entries are recorded
in the caller's transaction (the same one as the change they record) and placed at the end of
the chain as it commits, under the head row's lock, held only for that moment.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select, text
from sqlalchemy import event as sa_event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.util import await_

from charter.audit.models import AuditEntry, AuditHead
from charter.clock import Clock
from charter.db import Database, conflict_insert, table_of, utc_text
from charter.errors import RecordedRefusal

if TYPE_CHECKING:
    import psycopg

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


def entry_hash(
    *,
    seq: int,
    at: str,
    actor: str,
    action: str,
    target: str,
    outcome: str,
    details: str,
    prev_hash: str,
) -> str:
    """The hash of one entry, from its stored fields."""
    return _digest((str(seq), at, actor, action, target, outcome, details, prev_hash))


def _digest(fields: Iterable[str]) -> str:
    return hashlib.sha256(_SEP.join(fields).encode()).hexdigest()


# Core statements on the tables, run on the session's connection: appends sit in the path of
# every request, and the ORM's bookkeeping would cost more than the statements themselves.
_HEAD_TABLE = table_of(AuditHead)
_ENTRY_TABLE = table_of(AuditEntry)
_LOCK_HEAD = (
    select(_HEAD_TABLE.c.seq, _HEAD_TABLE.c.hash).where(_HEAD_TABLE.c.id == 1).with_for_update()
)
_MOVE_HEAD = _HEAD_TABLE.update().where(_HEAD_TABLE.c.id == 1)
_APPEND = _ENTRY_TABLE.insert()


@dataclass
class Appended:
    """An entry recorded in a transaction. It takes its place in the chain (`seq`,
    `prev_hash`, `hash`) as the transaction commits: the chain's head is held only for that
    moment, not for the whole transaction (DESIGN.md, "One audit chain, many writers")."""

    actor: str
    action: str
    target: str
    outcome: str
    details: str
    at: str
    seq: int | None = None
    prev_hash: str | None = None
    hash: str | None = None


# Where a session keeps the entries of its transaction until it commits.
_PENDING = "charter_audit_pending"


def record(session: Session, clock: Clock, event: Event) -> Appended:
    """Record one entry in the session's transaction; it commits with the change it
    records, and takes its place in the chain then."""
    return record_many(session, clock, [event])[-1]


def record_refusal(db: Database, clock: Clock, refusal: RecordedRefusal, *, actor: str) -> None:
    """Record `refusal`'s entries in a unit of their own, after the work it stopped rolled
    back (see `RecordedRefusal`)."""
    if not refusal.targets:
        return
    with db.writing() as session:
        record_many(
            session,
            clock,
            [
                Event(
                    actor,
                    refusal.action,
                    target,
                    outcome="failed",
                    details=refusal.recorded_details,
                )
                for target in refusal.targets
            ],
        )


def record_many(session: Session, clock: Clock, events: Iterable[Event]) -> list[Appended]:
    """Record several entries in one transaction, in order."""
    at = utc_text(clock.now())
    entries = []
    for event in events:
        # The hash joins the fields with this separator; were it inside a field, text could
        # move from one field to the next without changing the hash.
        if any(_SEP in field for field in (event.actor, event.action, event.target, event.outcome)):
            raise ValueError(
                "an audit entry's actor, action, target and outcome may not contain U+001F"
            )
        entries.append(
            Appended(
                event.actor,
                event.action,
                event.target,
                event.outcome,
                canonical_details(event.details),
                at,
            )
        )
    session.info.setdefault(_PENDING, []).extend(entries)
    return entries


@sa_event.listens_for(Session, "before_commit")
def _place_pending(session: Session) -> None:
    """Put the transaction's entries at the end of the chain, last thing before it commits:
    the head's row lock is held from here to the commit only."""
    entries = session.info.pop(_PENDING, None)
    if not entries:
        return
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        _append(connection, entries)
        return
    if len(entries) == 1 and connection.info.get(_HEAD_SEEN):
        # Whatever the session still holds goes in first: the transaction ends below.
        session.flush()
        _append_one_and_commit(connection, entries[0])
        return
    _append(connection, entries)
    connection.info[_HEAD_SEEN] = True


# Set on a PostgreSQL connection (it stays with the driver's connection in the pool) once an
# append on it found the chain's head row, which nothing ever deletes.
_HEAD_SEEN = "charter_audit_head_seen"


def _append_one_and_commit(connection: Connection, entry: Appended) -> None:
    """Append one entry and commit, in one round trip: the statement and the COMMIT go to
    PostgreSQL together (psycopg's pipeline mode), so the head's row lock is held for the
    statement and the commit alone, with no wait for this process in between. Session.commit
    then finds the transaction committed and has nothing left to send.

    A unit of work on the event loop (charter.loop_writes) holds an asyncio connection: there
    the same round trip is awaited through SQLAlchemy's bridge, the loop serving on meanwhile.
    """
    import psycopg  # noqa: PLC0415 - loaded by servers on PostgreSQL only

    raw = connection.connection.driver_connection
    try:
        if isinstance(raw, psycopg.AsyncConnection):
            placed = await_(_append_one_and_commit_async(raw, _row(entry)))
        elif isinstance(raw, psycopg.Connection):
            with raw.pipeline():
                cursor = raw.cursor()
                cursor.execute(_APPEND_ONE_PG, _row(entry))
                raw.commit()
            placed = cursor.fetchone()
        else:  # pragma: no cover - Charter's only PostgreSQL driver
            raise TypeError("PostgreSQL is reached through psycopg")
    except psycopg.Error as exc:
        # As SQLAlchemy would have raised it: the callers' handling of a database that fails
        # (503 for one that does not answer) sees no difference.
        invalidated = connection.dialect.is_disconnect(exc, connection.connection, None)  # type: ignore[arg-type]  # psycopg's errors are the DB-API's
        if invalidated:
            connection.invalidate(exc)
        raise DBAPIError.instance(
            _APPEND_ONE_PG,
            None,
            exc,
            psycopg.Error,
            hide_parameters=True,
            connection_invalidated=invalidated,
            dialect=connection.dialect,
            ismulti=False,
        ) from None
    if placed is None:  # pragma: no cover - the statement fails instead (see below)
        raise RuntimeError("the audit entry found no head to follow")
    entry.seq, entry.prev_hash, entry.hash = placed


async def _append_one_and_commit_async(
    raw: psycopg.AsyncConnection[Any], row: dict[str, Any]
) -> Any:
    async with raw.pipeline():
        cursor = raw.cursor()
        await cursor.execute(_APPEND_ONE_PG, row)
        await raw.commit()
    return await cursor.fetchone()


@sa_event.listens_for(Session, "after_rollback")
def _forget_pending(session: Session) -> None:
    session.info.pop(_PENDING, None)


def _lock_head(connection: Connection) -> tuple[int, str]:
    # The head row is created by the first append. Two first appends at once must not both
    # create it: the insert that loses the race does nothing and then waits for the row lock.
    head = connection.execute(_LOCK_HEAD).first()
    if head is None:
        connection.execute(
            conflict_insert(connection)(_HEAD_TABLE)
            .values(id=1, seq=0, hash=GENESIS)
            .on_conflict_do_nothing()
        )
        head = connection.execute(_LOCK_HEAD).one()
    return int(head[0]), str(head[1])


def _append(connection: Connection, entries: list[Appended]) -> None:
    seq, prev = _lock_head(connection)
    rows = []
    for entry in entries:
        seq += 1
        fields = _row(entry)
        entry.seq, entry.prev_hash = seq, prev
        entry.hash = prev = entry_hash(seq=seq, prev_hash=prev, **fields)
        rows.append({**fields, "seq": seq, "prev_hash": entry.prev_hash, "hash": entry.hash})
    connection.execute(_APPEND, rows)
    connection.execute(_MOVE_HEAD, {"seq": seq, "hash": prev})


def _row(entry: Appended) -> dict[str, Any]:
    return {
        "at": entry.at,
        "actor": entry.actor,
        "action": entry.action,
        "target": entry.target,
        "outcome": entry.outcome,
        "details": entry.details,
    }


# On PostgreSQL one statement does an append: lock the head, hash the entry after it (the same
# SHA-256 of the same fields, joined by U+001F, as `entry_hash`), insert it, move the head.
# Were the head row missing, `head.seq + 1` would be NULL and the insert would fail on it: an
# entry is never lost without an error. In psycopg's own parameter style (see above).
_APPEND_ONE_PG = """
    WITH head AS (
        SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE
    ), given AS (
        SELECT CAST(%(at)s AS VARCHAR) AS at, CAST(%(actor)s AS VARCHAR) AS actor,
               CAST(%(action)s AS VARCHAR) AS action, CAST(%(target)s AS VARCHAR) AS target,
               CAST(%(outcome)s AS VARCHAR) AS outcome, CAST(%(details)s AS VARCHAR) AS details
    ), entry AS (
        INSERT INTO audit_entries
            (seq, at, actor, action, target, outcome, details, prev_hash, hash)
        SELECT head.seq + 1, given.at, given.actor, given.action, given.target,
               given.outcome, given.details, head.hash,
               encode(sha256(convert_to(concat_ws(chr(31), CAST(head.seq + 1 AS VARCHAR),
                   given.at, given.actor, given.action, given.target, given.outcome,
                   given.details, head.hash), 'UTF8')), 'hex')
        FROM given LEFT JOIN head ON true
        RETURNING seq, prev_hash, hash
    )
    UPDATE audit_head SET seq = entry.seq, hash = entry.hash FROM entry
    WHERE audit_head.id = 1
    RETURNING entry.seq, entry.prev_hash, entry.hash
"""


@dataclass(frozen=True)
class Verification:
    """The result of walking the chain: `ok`, how many entries, and the first bad one."""

    ok: bool
    entries: int
    head_hash: str
    first_bad_seq: int | None = None
    reason: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "entries": self.entries,
            "head_hash": self.head_hash,
            "first_bad_seq": self.first_bad_seq,
            "reason": self.reason,
        }


_HEAD = text("SELECT seq, hash FROM audit_head WHERE id = 1")
_ENTRIES_SQL = (
    "SELECT seq, at, actor, action, target, outcome, details, prev_hash, hash FROM audit_entries "
    "WHERE seq > {p} AND seq <= {p} ORDER BY seq LIMIT {p}"
)
# One statement, so one snapshot: an entry after the head is one that no append wrote.
_FIRST_BEYOND_HEAD = text(
    "SELECT MIN(seq) FROM audit_entries "
    "WHERE seq > COALESCE((SELECT seq FROM audit_head WHERE id = 1), 0)"
)


@dataclass(frozen=True)
class Checkpoint:
    """An entry's place and hash, kept outside the database (`charter audit checkpoint`), to
    prove later that the chain still holds it: `SEQ:HASH`."""

    seq: int
    hash: str

    def __str__(self) -> str:
        return f"{self.seq}:{self.hash}"

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """A checkpoint from its `SEQ:HASH` text; ValueError if it is not one."""
        seq, _, digest = text.strip().partition(":")
        if not seq.isdigit() or int(seq) < 1 or not _HEX64.fullmatch(digest):
            raise ValueError("a checkpoint is SEQ:HASH, e.g. 42:<64 hex digits>")
        return cls(int(seq), digest)


_HEX64 = re.compile(r"[0-9a-f]{64}")


def verify_chain(
    session: Session,
    *,
    against: Checkpoint | None = None,
    batch: int = 20000,
    progress: Callable[[int, int], None] | None = None,
) -> Verification:
    """Walk the whole chain; report the first entry that was altered, removed or reordered.

    With `against` (a checkpoint kept elsewhere), also prove that the entry at its place
    still has its hash, so nothing up to it was rewritten or replaced: an empty or a
    replaced database fails. `progress(entries walked, entries to walk)` is called after
    each batch.
    """
    connection = session.connection()
    # The walk stops at the head as read first: entries that other writers append meanwhile
    # (on PostgreSQL each statement sees the latest commits) are not a break in the chain.
    head_row = connection.execute(_HEAD).first()
    head_seq, head_hash = (int(head_row[0]), str(head_row[1])) if head_row else (0, GENESIS)
    count, last_hash, found_checkpoint = 0, GENESIS, against is None
    # The walk reads plain tuples from the driver's cursor and checks each entry inline: this
    # loop is the whole cost of verification (`make bench BENCH=audit.verify`). A row that
    # fails is handed to `_check_entry` for the reason.
    marks = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    sql = _ENTRIES_SQL.format(p=marks)
    sha256, join = hashlib.sha256, _SEP.join
    cursor = connection.connection.cursor()
    try:
        while count < head_seq:
            cursor.execute(sql, (count, head_seq, batch))
            rows = cursor.fetchall()
            if not rows:
                break
            for row in rows:
                seq, at, actor, action, target, outcome, details, prev_hash, stored = row
                line = join((str(seq), at, actor, action, target, outcome, details, prev_hash))
                if (
                    seq != count + 1
                    or prev_hash != last_hash
                    or sha256(line.encode()).hexdigest() != stored
                ):
                    broken = _check_entry(row, count + 1, last_hash)
                    if broken is not None:
                        return Verification(False, broken[0] - 1, last_hash, broken[0], broken[1])
                last_hash = stored
                count += 1
                found_checkpoint = found_checkpoint or (
                    against is not None and seq == against.seq and stored == against.hash
                )
            if progress is not None:
                progress(count, head_seq)
    finally:
        cursor.close()
    ending = _check_ending(connection, count, last_hash, head_seq, head_hash)
    if ending is not None:
        return Verification(False, ending[0] - 1, last_hash, ending[0], ending[1])
    if not found_checkpoint:
        return Verification(
            False,
            count,
            last_hash,
            None,
            "the checkpoint is not in the chain: the entries up to it were rewritten or removed",
        )
    return Verification(True, count, last_hash)


def _check_entry(row: Sequence[Any], seq: int, prev: str) -> tuple[int, str] | None:
    """The first bad entry, and why, if the row that should be entry `seq` (following hash
    `prev`) breaks the chain."""
    found_seq, at, actor, action, target, outcome, details, prev_hash, stored = row
    if found_seq != seq:
        return seq, f"entry {seq} is missing (next is {found_seq})"
    intact = _digest((str(seq), at, actor, action, target, outcome, details, prev_hash)) == stored
    if prev_hash != prev:
        if intact and seq > 1:
            # This entry is as written, so the one before it is not: it was rewritten and
            # re-hashed (or replaced by another entry).
            return (
                seq - 1,
                f"entry {seq - 1} was rewritten (entry {seq} records another hash for it)",
            )
        return seq, f"entry {seq} does not follow entry {seq - 1} (reordered or replaced)"
    if not intact:
        return seq, f"entry {seq} was altered"
    return None


def _check_ending(
    connection: Connection, count: int, last_hash: str, head_seq: int, head_hash: str
) -> tuple[int, str] | None:
    """The first bad entry, and why, if the walked chain and its head row disagree."""
    if count < head_seq:
        return count + 1, (
            f"the chain ends at entry {count} but its head records entry {head_seq} "
            "(entries were removed from the end)"
        )
    if last_hash != head_hash:
        return count, (
            f"entry {count} does not match the head of the chain "
            "(the entry was rewritten, or the head was changed)"
        )
    beyond = connection.execute(_FIRST_BEYOND_HEAD).scalar()
    if beyond is not None:
        return int(beyond), f"entry {beyond} comes after the head of the chain: no append wrote it"
    return None


def head(session: Session) -> tuple[int, str]:
    """The current (sequence, hash) of the chain's last entry: a checkpoint to keep elsewhere."""
    row = session.connection().execute(_HEAD).first()
    return (int(row[0]), str(row[1])) if row else (0, GENESIS)


def checkpoint(session: Session) -> Checkpoint | None:
    """The chain's head as a checkpoint; None while the chain is empty."""
    seq, digest = head(session)
    return Checkpoint(seq, digest) if seq else None
