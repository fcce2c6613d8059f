"""Work a serving process does beside its requests, started and stopped with the app."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from fastapi import FastAPI
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from charter.requests.reminders import daily_request_work
from charter.staff.attempts import record_refusals
from charter.vault.recovery import KEY_GRACE, settle_keys
from charter.web.runtime import Runtime

log = logging.getLogger("charter.web")

# How often the counts of refused keys of minutes gone by are written to the audit log.
REFUSALS_EVERY_S = 5.0
# How often keys made for writes that never committed are looked for (see vault.recovery).
SETTLE_KEYS_EVERY_S = 300.0
# How often the outbox is looked at for mail that is due (see charter.mail.sender).
SEND_MAIL_EVERY_S = 1.0
# How often the rights requests' daily work is looked for (see charter.requests.reminders).
REQUEST_WORK_EVERY_S = 600.0
# How often SQLite's write-ahead log is copied into the database (see Database.checkpoint).
CHECKPOINT_EVERY_S = 1.0


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


def settle_old_keys(runtime: Runtime) -> None:
    """Destroy the data keys of writes that never committed, made long enough ago."""
    try:
        settle_keys(
            runtime.db,
            runtime.keys,
            runtime.clock,
            created_before=runtime.clock.now() - KEY_GRACE,
        )
    except SQLAlchemyError:
        log.warning("unsettled data keys could not be looked at; trying again later")


def send_mail(runtime: Runtime) -> None:
    """Send what the outbox holds that is due; its blocking SMTP work runs in this thread."""
    try:
        runtime.mail.send_due()
    except SQLAlchemyError:
        log.warning("the outbox could not be read or marked; trying again")


def request_work(runtime: Runtime) -> None:
    """Today's reminder of rights requests due soon, and the sweep of old records."""
    try:
        daily_request_work(
            runtime.db,
            runtime.clock,
            runtime.outbox,
            to=runtime.settings.privacy_officers_mail,
        )
    except SQLAlchemyError:
        log.warning("the rights requests' daily work could not be done; trying again later")


def checkpoint(runtime: Runtime) -> None:
    try:
        runtime.db.checkpoint()
    except SQLAlchemyError:
        log.warning("the database's write-ahead log could not be checkpointed; trying again")


async def _every(seconds: float, work: Callable[[Runtime], object], runtime: Runtime) -> None:
    while True:
        await asyncio.sleep(seconds)
        running = asyncio.ensure_future(run_in_threadpool(work, runtime))
        try:
            await asyncio.shield(running)
        except asyncio.CancelledError:
            # The app is stopping: a thread cannot be cancelled, so its work (a checkpoint, a
            # count of refusals) ends before the app does, not while the database is closed.
            await running
            raise


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    runtime = app.state.runtime
    tasks = [
        asyncio.create_task(_every(REFUSALS_EVERY_S, record_closed_refusals, runtime)),
        asyncio.create_task(_every(SETTLE_KEYS_EVERY_S, settle_old_keys, runtime)),
        asyncio.create_task(_every(SEND_MAIL_EVERY_S, send_mail, runtime)),
        asyncio.create_task(_every(REQUEST_WORK_EVERY_S, request_work, runtime)),
    ]
    if runtime.db.is_sqlite:
        tasks.append(asyncio.create_task(_every(CHECKPOINT_EVERY_S, checkpoint, runtime)))
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await run_in_threadpool(record_closed_refusals, runtime, everything=True)
        if runtime.loop_reads is not None:
            runtime.loop_reads.close()
        if runtime.loop_writes is not None:
            await runtime.loop_writes.close()
