"""Units of work made on the event loop itself, on PostgreSQL: a route's write in one piece.

A unit handed to the thread pool costs two switches between threads, each waiting for the GIL,
and under load the threads that wait for PostgreSQL's answers take turns for the GIL with the
loop that parses and answers requests. Here the unit runs on the loop through SQLAlchemy's
asyncio bridge (a greenlet): the same synchronous code `Database.writing` runs, on the same
`Session` with the same listeners (the audit entries are appended at commit), but each
statement awaits its answer, and the loop serves other requests meanwhile.

An engine and pool of its own, of psycopg's asyncio connections, as large as the data
database's pool (CHARTER_DATABASE_POOL_SIZE). A connection waits for its socket on the loop
that runs it, so the engine is made on first use on the serving loop and closed with the app
(`close`); a unit on another loop (an app served again) gets an engine of its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy import Engine, event

from charter.db import POOL_OVERFLOW, committed, postgres_connect_args, refuse_closed_connection

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
    from sqlalchemy.orm import Session

T = TypeVar("T")


class LoopWrites:
    """Committed units of work on the running event loop, against the database `engine`
    reaches (PostgreSQL)."""

    def __init__(self, engine: Engine, *, pool_size: int) -> None:
        self._url = engine.url
        self._pool_size = pool_size
        self._engine: AsyncEngine | None = None
        self._sessions: async_sessionmaker[AsyncSession] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def unit(self, work: Callable[[Session], T]) -> T:
        """`work(session)`, committed (or rolled back if it raises), and its result."""
        sessions = await self._sessions_of_this_loop()
        async with sessions() as session:
            return await session.run_sync(committed, work)

    async def _sessions_of_this_loop(self) -> async_sessionmaker[AsyncSession]:
        # Loaded on first use: a server on SQLite never loads the asyncio bridge.
        from sqlalchemy.ext.asyncio import (  # noqa: PLC0415
            async_sessionmaker,
            create_async_engine,
        )

        loop = asyncio.get_running_loop()
        if self._sessions is not None and self._loop is loop:
            return self._sessions
        await self.close()
        self._engine = create_async_engine(
            self._url,
            pool_size=self._pool_size,
            max_overflow=POOL_OVERFLOW,
            hide_parameters=True,
            connect_args=postgres_connect_args(self._url),
        )
        event.listen(self._engine.sync_engine, "checkout", refuse_closed_connection)
        self._sessions = async_sessionmaker(self._engine, expire_on_commit=False)
        self._loop = loop
        return self._sessions

    async def close(self) -> None:
        """Close the pool's connections (on the loop that made them)."""
        engine, self._engine, self._sessions = self._engine, None, None
        if engine is None:
            return
        if self._loop is asyncio.get_running_loop():
            await engine.dispose()
        else:
            # Made on a loop gone by: its connections cannot be awaited from this one.
            await engine.dispose(close=False)
