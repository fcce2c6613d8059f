"""Work a serving process does beside its requests, started and stopped with the app."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from charter.staff.attempts import record_refusals
from charter.web.runtime import Runtime

log = logging.getLogger("charter.web")

# How often the counts of refused keys of minutes gone by are written to the audit log.
REFUSALS_EVERY_S = 5.0


def record_closed_refusals(runtime: Runtime, *, everything: bool = False) -> int:
    """Write the refused-key counts of finished minutes (all of them with `everything`) to
    the audit log; counts that cannot be written now are kept for the next try."""
    buckets = runtime.attempts.closed(runtime.clock.now(), everything=everything)
    if not buckets:
        return 0
    try:
        with runtime.db.writing() as session:
            return record_refusals(session, runtime.clock, buckets)
    except SQLAlchemyError:
        runtime.attempts.put_back(buckets)
        log.warning("the counts of refused keys could not be recorded yet")
        return 0


async def _record_refusals_periodically(runtime: Runtime) -> None:
    while True:
        await asyncio.sleep(REFUSALS_EVERY_S)
        await run_in_threadpool(record_closed_refusals, runtime)


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    runtime = app.state.runtime
    task = asyncio.create_task(_record_refusals_periodically(runtime))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await run_in_threadpool(record_closed_refusals, runtime, everything=True)
