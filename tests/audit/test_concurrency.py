"""One audit chain, many writers (DESIGN.md): processes and threads appending at once keep one
intact chain with every entry in it."""

from __future__ import annotations

import itertools
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import text

from charter import migrations
from charter.audit.chain import Event, record, verify_chain
from charter.clock import SystemClock
from charter.db import Database, make_engine

WRITER = Path(__file__).resolve().parent / "writer.py"


def run_together(*commands: list[str]) -> list[subprocess.CompletedProcess[str]]:
    """Start each `writer.py` command, wait until all are ready, then release them at once."""
    processes = [
        subprocess.Popen(
            [sys.executable, str(WRITER), *command],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for command in commands
    ]
    for process in processes:
        assert process.stdout is not None
        if process.stdout.readline().strip() != "ready":
            process.wait()
    for process in processes:
        assert process.stdin is not None
        if process.poll() is None:
            process.stdin.write("go\n")
            process.stdin.flush()
    results = []
    for command, process in zip(commands, processes, strict=True):
        stdout, stderr = process.communicate(timeout=120)
        results.append(subprocess.CompletedProcess(command, process.returncode, stdout, stderr))
    return results


def appended_by_writer(db: Database) -> Counter[str]:
    with db.reading() as session:
        rows = session.execute(text("SELECT actor, target FROM audit_entries")).all()
    assert len({(actor, target) for actor, target in rows}) == len(rows), "an entry was duplicated"
    return Counter(actor for actor, _ in rows)


@pytest.mark.clause("C3")
@pytest.mark.slow
def test_two_processes_append_to_one_chain(committed_db: Database) -> None:
    per_writer = 200
    names = ("a", "b")
    url: str = committed_db.url  # type: ignore[attr-defined]

    results = run_together(*(["append", url, str(per_writer), name] for name in names))

    for result in results:
        assert result.returncode == 0, result.stderr
        assert "database is locked" not in result.stderr
    with committed_db.reading() as session:
        verification = verify_chain(session)
    assert verification.ok, verification.reason
    assert verification.entries == per_writer * len(names)
    assert appended_by_writer(committed_db) == {f"writer:{name}": per_writer for name in names}
    if not committed_db.is_sqlite:
        # The writers did run at once: their entries alternate in the chain. (On SQLite a
        # waiting writer sleeps in its busy handler while the other may run on to the end.)
        with committed_db.reading() as session:
            actors = session.scalars(text("SELECT actor FROM audit_entries ORDER BY seq")).all()
        assert sum(1 for one, two in itertools.pairwise(actors) if one != two) > 2


@pytest.mark.clause("C3")
def test_eight_threads_append_through_one_database(committed_db: Database) -> None:
    per_thread = 25
    clock = SystemClock()
    start = threading.Barrier(8)
    errors: list[BaseException] = []

    def append(name: str) -> None:
        try:
            start.wait()
            for number in range(per_thread):
                with committed_db.writing() as session:
                    record(
                        session,
                        clock,
                        Event(f"writer:{name}", "test:entry:appended", f"n:{number}"),
                    )
        except BaseException as exc:  # noqa: BLE001 - reported to the test below
            errors.append(exc)

    threads = [threading.Thread(target=append, args=(str(n),)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    with committed_db.reading() as session:
        verification = verify_chain(session)
    assert verification.ok, verification.reason
    assert verification.entries == per_thread * 8
    assert appended_by_writer(committed_db) == {f"writer:{n}": per_thread for n in range(8)}


@pytest.mark.clause("C3")
def test_verify_while_writers_append_never_reports_a_false_break(committed_db: Database) -> None:
    clock = SystemClock()
    stop = threading.Event()
    errors: list[BaseException] = []

    def append() -> None:
        try:
            number = 0
            while not stop.is_set():
                with committed_db.writing() as session:
                    record(session, clock, Event("writer:w", "test:entry:appended", f"n:{number}"))
                number += 1
        except BaseException as exc:  # noqa: BLE001 - reported to the test below
            errors.append(exc)

    writers = [threading.Thread(target=append) for _ in range(2)]
    for writer in writers:
        writer.start()
    try:
        verifications = []
        for _ in range(30):
            with committed_db.reading() as session:
                verifications.append(verify_chain(session, batch=7))
    finally:
        stop.set()
        for writer in writers:
            writer.join()

    assert errors == []
    assert [v for v in verifications if not v.ok] == []


@pytest.mark.slow
def test_processes_starting_on_one_new_database_migrate_it_once(
    database_url_factory: Callable[[], str],
) -> None:
    url = database_url_factory()

    results = run_together(["migrate", url], ["migrate", url])

    for result in results:
        assert result.returncode == 0, result.stderr
    engine = make_engine(url)
    try:
        assert migrations.current_revision(engine) == migrations.head_revision(engine)
    finally:
        engine.dispose()
