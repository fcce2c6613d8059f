"""Single-row reads made on the event loop itself, on PostgreSQL: the Gate's key check.

A read handed to the thread pool costs two switches between threads, each waiting for the GIL
(about a millisecond a request on these machines, more than the read's round trip). On SQLite
the Gate reads on the loop through `Database.quick_reading`, a local file; PostgreSQL is a
round trip away, so there the read is made with psycopg's asyncio connections, which wait for
the answer without holding up the loop.

A few connections of their own, outside SQLAlchemy's pool, in autocommit (a single read needs
no transaction). Nothing here ever waits for one: when all are busy, or the database fails
the read, `one` answers `BUSY` and the caller reads the way it did before, in the thread pool
(where a failure is reported as any other). psycopg is loaded on first use: a server on
SQLite never loads it (about 9 MB).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy.engine import make_url

if TYPE_CHECKING:
    import psycopg


class Busy:
    """The answer of `LoopReads.one` when every connection is in use."""


BUSY: Final = Busy()


class LoopReads:
    """Up to `size` psycopg asyncio connections to the database at `url`."""

    def __init__(self, url: str, *, size: int = 4, connect_timeout_s: int = 10) -> None:
        parsed = make_url(url).set(drivername="postgresql")
        self._conninfo = parsed.render_as_string(hide_password=False)
        self._size = size
        self._timeout = connect_timeout_s
        self._idle: list[psycopg.AsyncConnection[Any]] = []
        self._open = 0
        # The loop the idle connections were used on. A connection waits for its socket on
        # the loop that runs it; one kept from another loop (an app served again) is closed.
        self._loop: asyncio.AbstractEventLoop | None = None

    async def one(self, sql: str, params: Mapping[str, Any]) -> Sequence[Any] | Busy | None:
        """The first row of `sql`, None if it has none, or `BUSY`. A connection the server
        dropped (a restart) is replaced and the read made once more."""
        import psycopg  # noqa: PLC0415 - see the module's docstring

        self._forget_other_loops()
        try:
            try:
                return await self._read(sql, params)
            except psycopg.OperationalError:
                return await self._read(sql, params)
        except psycopg.Error:
            return BUSY

    async def _read(self, sql: str, params: Mapping[str, Any]) -> Sequence[Any] | Busy | None:
        import psycopg  # noqa: PLC0415 - see the module's docstring

        connection = self._idle.pop() if self._idle else None
        if connection is None:
            if self._open >= self._size:
                return BUSY
            self._open += 1
            try:
                connection = await psycopg.AsyncConnection.connect(
                    self._conninfo, autocommit=True, connect_timeout=self._timeout
                )
            except BaseException:
                self._open -= 1
                raise
        try:
            cursor = await connection.execute(sql, params)
            row = await cursor.fetchone()
        except BaseException:
            self._open -= 1
            with contextlib.suppress(psycopg.Error):
                await connection.close()
            raise
        self._idle.append(connection)
        return row

    def _forget_other_loops(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._close_idle()
            self._loop = loop

    def _close_idle(self) -> None:
        for connection in self._idle:
            connection.pgconn.finish()
        self._open -= len(self._idle)
        self._idle.clear()

    def close(self) -> None:
        """Close the idle connections (a read still running closes its own when done)."""
        self._close_idle()
