"""Where a route's unit of work runs: on the event loop's own thread when that is cheaper than
a hand-off to the thread pool and back, else in the pool.

A hand-off costs a request about a millisecond on these machines (two switches between
threads, each waiting for the GIL), more than a small write to a local SQLite file takes. So
on SQLite a small write runs right on the event loop, if the write lock is free this instant
(`Database.writing_now`); if another writer holds it, the work goes to the pool and waits for
the lock there, never holding up the loop. On PostgreSQL each statement is a round trip over
the network: the unit runs on the loop through the asyncio bridge (charter.loop_writes),
awaiting each answer while the loop serves other requests.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from charter.db import Database
from charter.web.runtime import Runtime

T = TypeVar("T")


async def write_unit(runtime: Runtime, work: Callable[[Session], T]) -> T:
    """`work(session)` in one committed write unit (`Database.writing`), its result."""
    if runtime.loop_writes is not None:
        return await runtime.loop_writes.unit(work)
    with runtime.db.writing_now() as session:
        if session is not None:
            return work(session)
    return await run_in_threadpool(_in_thread, runtime.db, work)


async def bulk_write_unit(runtime: Runtime, work: Callable[[Session], T]) -> T:
    """`write_unit` for a unit whose own work, not its waits, is long (a disclosure deciding
    thousands of people): always in the thread pool, so that it never holds up the loop."""
    return await run_in_threadpool(_in_thread, runtime.db, work)


def _in_thread(db: Database, work: Callable[[Session], T]) -> T:
    with db.writing() as session:
        return work(session)
