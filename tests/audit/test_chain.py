"""Tamper evidence: editing, deleting, swapping or inserting any audit row (with raw SQL, as
someone with write access to the database would) makes `verify_chain` fail and name the entry;
a checkpoint kept elsewhere also catches a forger who re-hashes the whole chain."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import text

from charter.audit.chain import (
    Checkpoint,
    Event,
    entry_hash,
    head,
    record,
    record_many,
    verify_chain,
)
from charter.clock import FixedClock
from charter.db import Database

pytestmark = pytest.mark.clause("C3")

LENGTH = 20
COLUMNS = "seq, at, actor, action, target, outcome, details, prev_hash, hash"
# Which entries to tamper with: the first, middle ones, the one before the last, the last.
POSITIONS = [1, 2, 10, 19, 20]
MIDDLE = [2, 10, 19]


def build_chain(db: Database, clock: FixedClock, length: int = LENGTH) -> list[int]:
    """Append `length` distinct entries, one per transaction; return their sequence numbers
    (an entry takes its place in the chain as its transaction commits)."""
    entries = []
    for number in range(length):
        clock.advance(dt.timedelta(seconds=1))
        with db.writing() as session:
            entry = record(
                session,
                clock,
                Event(
                    f"staff:{number % 3}/key:k{number}",
                    f"test:thing:{'read' if number % 2 else 'changed'}",
                    f"thing:{number}",
                    outcome="ok" if number % 5 else "refused",
                    details={"number": number, "note": f"n{number}"},
                ),
            )
        entries.append(entry)
    return [int(entry.seq or 0) for entry in entries]


def verify(db: Database, against: Checkpoint | None = None, batch: int = 20000) -> Any:
    with db.reading() as session:
        return verify_chain(session, against=against, batch=batch)


def execute(db: Database, sql: str, **params: Any) -> None:
    with db.writing() as session:
        session.execute(text(sql), params)


def read_row(db: Database, seq: int) -> dict[str, Any]:
    with db.reading() as session:
        row = session.execute(
            text(f"SELECT {COLUMNS} FROM audit_entries WHERE seq = :seq"),  # noqa: S608 - constant
            {"seq": seq},
        ).one()
    return dict(row._mapping)


def insert_row(db: Database, row: dict[str, Any]) -> None:
    execute(
        db,
        f"INSERT INTO audit_entries ({COLUMNS}) VALUES "  # noqa: S608 - constant column list
        "(:seq, :at, :actor, :action, :target, :outcome, :details, :prev_hash, :hash)",
        **row,
    )


def rehash(row: dict[str, Any], prev_hash: str) -> dict[str, Any]:
    """The row as a forger would rewrite it: chained to `prev_hash`, with a matching hash."""
    fields = {name: row[name] for name in ("seq", "at", "actor", "action", "target", "outcome")}
    digest = entry_hash(**fields, details=row["details"], prev_hash=prev_hash)
    return {**row, "prev_hash": prev_hash, "hash": digest}


@pytest.fixture
def chain(db: Database, clock: FixedClock) -> list[int]:
    seqs = build_chain(db, clock)
    assert verify(db).ok
    return seqs


def test_an_untouched_chain_is_intact(db: Database, chain: list[int]) -> None:
    result = verify(db)
    assert result.ok
    assert result.entries == chain[-1]
    assert result.first_bad_seq is None
    with db.reading() as session:
        assert result.head_hash == head(session)[1]


FORGED_VALUES = {
    "actor": "staff:9/key:someoneelse",
    "action": "test:thing:ignored",
    "target": "thing:999",
    "outcome": "ok-after-all",
    "details": '{"number":0,"note":"forged"}',
    "at": "2020-01-01T00:00:00.000000Z",
    "prev_hash": "f" * 64,
    "hash": "e" * 64,
}


@pytest.mark.parametrize("column", sorted(FORGED_VALUES))
@pytest.mark.parametrize("position", POSITIONS)
def test_editing_any_field_of_an_entry_names_that_entry(
    db: Database, chain: list[int], column: str, position: int
) -> None:
    seq = chain[position - 1]
    execute(
        db,
        f"UPDATE audit_entries SET {column} = :value WHERE seq = :seq",  # noqa: S608 - column from the list above
        value=FORGED_VALUES[column],
        seq=seq,
    )

    result = verify(db)

    assert not result.ok
    assert result.first_bad_seq == seq
    assert str(seq) in (result.reason or "")


@pytest.mark.parametrize("position", POSITIONS)
def test_editing_an_entry_and_fixing_its_own_hash_still_names_it(
    db: Database, chain: list[int], position: int
) -> None:
    seq = chain[position - 1]
    row = read_row(db, seq)
    forged = rehash({**row, "target": "thing:forged"}, row["prev_hash"])
    execute(
        db,
        "UPDATE audit_entries SET target = :target, hash = :hash WHERE seq = :seq",
        **forged,
    )

    result = verify(db)

    assert not result.ok
    assert result.first_bad_seq == seq


@pytest.mark.parametrize("position", [1, *MIDDLE])
def test_deleting_an_entry_names_it(db: Database, chain: list[int], position: int) -> None:
    seq = chain[position - 1]
    execute(db, "DELETE FROM audit_entries WHERE seq = :seq", seq=seq)

    result = verify(db)

    assert not result.ok
    assert result.first_bad_seq == seq
    assert "missing" in (result.reason or "")


@pytest.mark.parametrize("removed", [1, 3])
def test_deleting_entries_from_the_end_names_the_first_removed(
    db: Database, chain: list[int], removed: int
) -> None:
    execute(db, "DELETE FROM audit_entries WHERE seq > :keep", keep=chain[-1 - removed])

    result = verify(db)

    assert not result.ok
    assert result.first_bad_seq == chain[-removed]
    assert result.entries == chain[-1 - removed]


def swap_whole_rows(db: Database, first: int) -> None:
    """Entries `first` and `first + 1` trade places: each row keeps its hashes, not its seq."""
    one, two = read_row(db, first), read_row(db, first + 1)
    execute(db, "DELETE FROM audit_entries WHERE seq IN (:a, :b)", a=first, b=first + 1)
    insert_row(db, {**two, "seq": first})
    insert_row(db, {**one, "seq": first + 1})


def swap_contents(db: Database, first: int) -> None:
    """Entries `first` and `first + 1` trade what they say; seqs and hashes stay in place."""
    one, two = read_row(db, first), read_row(db, first + 1)
    content = ("at", "actor", "action", "target", "outcome", "details")
    for seq, source in ((first, two), (first + 1, one)):
        execute(
            db,
            "UPDATE audit_entries SET at = :at, actor = :actor, action = :action, "
            "target = :target, outcome = :outcome, details = :details WHERE seq = :seq",
            seq=seq,
            **{name: source[name] for name in content},
        )


@pytest.mark.parametrize("swap", [swap_whole_rows, swap_contents])
@pytest.mark.parametrize("position", [1, 2, 10, 19])
def test_swapping_two_adjacent_entries_names_the_first(
    db: Database, chain: list[int], position: int, swap: Any
) -> None:
    seq = chain[position - 1]
    swap(db, seq)

    result = verify(db)

    assert not result.ok
    assert result.first_bad_seq == seq


def test_an_entry_appended_without_moving_the_head_is_named(db: Database, chain: list[int]) -> None:
    last = read_row(db, chain[-1])
    forged = rehash({**last, "seq": last["seq"] + 1, "target": "thing:smuggled"}, last["hash"])
    insert_row(db, forged)

    result = verify(db)

    assert not result.ok
    assert result.first_bad_seq == forged["seq"]


@pytest.mark.parametrize("batch", [1, 3, 7])
def test_small_batches_name_the_same_entry(db: Database, chain: list[int], batch: int) -> None:
    assert verify(db, batch=batch).ok
    execute(db, "DELETE FROM audit_entries WHERE seq = :seq", seq=chain[9])

    result = verify(db, batch=batch)

    assert not result.ok
    assert result.first_bad_seq == chain[9]


# --- Checkpoints -------------------------------------------------------------------------------


def test_a_checkpoint_of_an_earlier_head_verifies_after_more_appends(
    db: Database, clock: FixedClock
) -> None:
    build_chain(db, clock, 10)
    with db.reading() as session:
        checkpoint = Checkpoint(*head(session))
    build_chain(db, clock, 10)

    assert verify(db, against=checkpoint).ok
    assert not verify(db, against=Checkpoint(checkpoint.seq, "a" * 64)).ok
    assert not verify(db, against=Checkpoint(checkpoint.seq + 1, checkpoint.hash)).ok


def test_a_forger_who_rehashes_the_chain_passes_verify_but_not_the_checkpoint(
    db: Database, clock: FixedClock
) -> None:
    early = build_chain(db, clock, 10)
    with db.reading() as session:
        checkpoint = Checkpoint(*head(session))
    later = build_chain(db, clock, 10)
    seqs = early + later

    # Rewrite entry 5, then every later entry and the head, so that the chain is consistent.
    rows = [read_row(db, seq) for seq in seqs]
    rows[4] = {**rows[4], "actor": "staff:0/key:innocent"}
    execute(db, "DELETE FROM audit_entries WHERE seq >= :seq", seq=seqs[4])
    prev_hash = rows[3]["hash"]
    for row in rows[4:]:
        forged = rehash(row, prev_hash)
        insert_row(db, forged)
        prev_hash = forged["hash"]
    execute(db, "UPDATE audit_head SET hash = :hash", hash=prev_hash)

    assert verify(db).ok
    result = verify(db, against=checkpoint)
    assert not result.ok
    assert "checkpoint" in (result.reason or "")


def test_truncation_that_also_moves_the_head_back_is_caught_by_a_checkpoint(
    db: Database, chain: list[int]
) -> None:
    with db.reading() as session:
        checkpoint = Checkpoint(*head(session))
    kept = read_row(db, chain[-3])
    execute(db, "DELETE FROM audit_entries WHERE seq > :seq", seq=kept["seq"])
    execute(
        db, "UPDATE audit_head SET seq = :seq, hash = :hash", seq=kept["seq"], hash=kept["hash"]
    )

    assert verify(db).ok
    assert not verify(db, against=checkpoint).ok


# --- Appending ---------------------------------------------------------------------------------


def test_entries_appended_together_chain_in_order(db: Database, clock: FixedClock) -> None:
    with db.writing() as session:
        entries = record_many(session, clock, [Event("test", f"test:batch:{n}") for n in range(5)])

    assert [entry.prev_hash for entry in entries[1:]] == [entry.hash for entry in entries[:-1]]
    assert verify(db).ok


@pytest.mark.parametrize("field", ["actor", "action", "target", "outcome"])
def test_a_field_holding_the_hash_separator_is_refused(
    db: Database, clock: FixedClock, field: str
) -> None:
    # Were it allowed, "a" + SEP + "b" in one field and "a", "b" in two would hash alike.
    values = {"actor": "test", "action": "test:thing:done", "target": "", "outcome": "ok"}
    values[field] = "a\x1fb"
    with pytest.raises(ValueError, match="U\\+001F"), db.writing() as session:
        record(session, clock, Event(**values))
    assert verify(db).ok
