"""Engine, sessions and the declarative base; migrations live beside this module.

A `Database` hands out units of work: `reading()` for reads, `writing()` for a transaction
that commits when the block ends. On SQLite, writes are serialised inside the process by a
lock and across processes by `BEGIN IMMEDIATE`, so that concurrent requests wait their turn
instead of failing with "database is locked".
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import functools
import os
import re
import select
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import (
    BigInteger,
    Connection,
    Engine,
    Integer,
    SmallInteger,
    String,
    Table,
    TypeDecorator,
    create_engine,
    event,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL, Dialect, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, DisconnectionError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import NullPool

from charter.settings import DEFAULT_POOL_SIZE

T = TypeVar("T")
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class Base(DeclarativeBase):
    """Declarative base of every Charter table."""


def table_of(model: type[Base]) -> Table:
    """A model's `Table`, for Core statements on the hot paths: a statement on the table runs
    on the session's connection without the ORM's per-statement bookkeeping."""
    table = model.__table__
    if not isinstance(table, Table):  # pragma: no cover - every Charter model maps one table
        raise TypeError(f"{model.__name__} does not map a single table")
    return table


def column_length(model: type[Base], column: str) -> int:
    """The length of a model's string column: what a request may send for it."""
    length = getattr(table_of(model).c[column].type, "length", None)
    if not isinstance(length, int):  # pragma: no cover - asked of string columns only
        raise TypeError(f"{model.__name__}.{column} has no length")
    return length


# Checked in this order: the sized types are kinds of Integer.
_INTEGER_BITS = ((SmallInteger, 16), (BigInteger, 64), (Integer, 32))


def column_max(model: type[Base], column: str) -> int:
    """The largest value a model's integer column holds: what a request may send for it (an
    id, a cursor), so that a larger one is refused at the door, not overflowed in the driver."""
    kind = table_of(model).c[column].type
    # A variant (`BigInteger().with_variant(Integer, "sqlite")`) is its own type on
    # PostgreSQL; SQLite's INTEGER holds 64 bits whatever the column declares.
    for sized, bits in _INTEGER_BITS:
        if isinstance(kind, sized):
            return (1 << (bits - 1)) - 1
    raise TypeError(f"{model.__name__}.{column} is not an integer column")


class DatabaseUnavailable(Exception):
    """The database cannot be reached or opened; the message names it without a password."""


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timezone-aware UTC datetime stored as fixed-width ISO text, the same on every database.

    Fixed width keeps the text sortable, so time ranges are plain comparisons.
    """

    impl = String(27)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> str | None:  # noqa: ARG002 - SQLAlchemy's signature
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("Charter stores timezone-aware datetimes only")
        return utc_text(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> dt.datetime | None:  # noqa: ARG002 - SQLAlchemy's signature
        return utc_from_text(value)


# The times a `UTCDateTime` column holds: years of four digits, so that the stored text sorts.
# A time from a request outside them (year 999, or one whose offset takes it past year 9999
# in UTC) would compare wrongly with the stored ones, or not convert to UTC at all.
EARLIEST_TIME = dt.datetime(1000, 1, 1, tzinfo=dt.UTC)
LATEST_TIME = dt.datetime.max.replace(tzinfo=dt.UTC)


def storable_time(moment: dt.datetime) -> bool:
    """Whether `moment` is timezone-aware and, in UTC, from EARLIEST_TIME to LATEST_TIME:
    a time a request may compare with the stored ones."""
    # Comparing aware datetimes takes their offsets in without converting either: no overflow.
    return moment.utcoffset() is not None and EARLIEST_TIME <= moment <= LATEST_TIME


def utc_text(moment: dt.datetime) -> str:
    """The stored text form of a UTC datetime (see `UTCDateTime`)."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def utc_from_text(value: str | None) -> dt.datetime | None:
    """The datetime of a stored `utc_text` (None stays None), for values read past
    SQLAlchemy as well as through `UTCDateTime`."""
    if value is None:
        return None
    # fromisoformat reads the "Z" form and is many times faster than strptime.
    return dt.datetime.fromisoformat(value)


def safe_url(url: str) -> str:
    """The URL with any password hidden, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        # Not a URL SQLAlchemy can read; still hide what looks like `user:password@`.
        return _USERINFO_PASSWORD.sub(r"\1:***@", url)


_USERINFO_PASSWORD = re.compile(r"^([^:/]*://[^:/@]*):[^@]*@")


@contextlib.contextmanager
def _file_lock(path: Path | None) -> Iterator[None]:
    """An exclusive `flock` on `path` for the block; nothing if there is no such path or the
    folder is read-only."""
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600) if path else None
    except OSError:
        descriptor = None
    try:
        if descriptor is not None:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        if descriptor is not None:
            os.close(descriptor)  # closing releases the lock


def _sqlite_pragmas(
    setup_lock: Path | None, synchronous: str, dbapi_connection: Any, _record: Any
) -> None:
    # Take transaction control from the driver, so that `begin` below decides how to begin.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")
    # Turning a new database to WAL needs it to itself, and SQLite answers "database is
    # locked" to a second process doing the same at that moment instead of waiting: the
    # processes that open a database take turns for this one statement.
    with _file_lock(setup_lock):
        cursor.execute("PRAGMA journal_mode=WAL")
    # NORMAL in WAL mode: a committed transaction survives a crash of the process (SIGKILL);
    # only a power loss may undo the last commits, which FULL (an fsync per commit) keeps.
    cursor.execute(f"PRAGMA synchronous={_SYNCHRONOUS[synchronous]}")
    cursor.execute("PRAGMA foreign_keys=ON")
    # 32 MiB of page cache per connection (the default is 2 MiB): batch inserts touch many
    # index pages.
    cursor.execute("PRAGMA cache_size=-32768")
    # Checkpoint every ~40 MB of WAL instead of every 4 MB: batch ingest fills the WAL fast,
    # and each checkpoint is paid by the commit that triggers it.
    cursor.execute("PRAGMA wal_autocheckpoint=10000")
    cursor.close()


_SYNCHRONOUS = {"normal": "NORMAL", "full": "FULL"}


def _sqlite_begin(connection: Connection) -> None:
    mode = "IMMEDIATE" if connection.get_execution_options().get("charter_write") else "DEFERRED"
    connection.exec_driver_sql(f"BEGIN {mode}")


# Connections a burst past the pool (CHARTER_DATABASE_POOL_SIZE) may open for a moment.
POOL_OVERFLOW = 10


def make_engine(url: str, *, sqlite_synchronous: str = "normal", **kwargs: Any) -> Engine:
    """An engine for `url`, set up for Charter (WAL and explicit BEGIN on SQLite).

    Raises `DatabaseUnavailable` for a URL that names no usable database.
    """
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise DatabaseUnavailable(f"not a database URL: {safe_url(url)!r}") from None
    try:
        return _create_engine(parsed, sqlite_synchronous, **kwargs)
    except ArgumentError:  # NoSuchModuleError included: a dialect SQLAlchemy does not know
        raise DatabaseUnavailable(
            f"not a database Charter can use: {safe_url(url)} (use sqlite:/// or postgresql://)"
        ) from None
    except ImportError as exc:
        raise DatabaseUnavailable(
            f"the driver for {safe_url(url)} is not installed ({exc.name or exc})"
        ) from None
    except OSError as exc:
        raise DatabaseUnavailable(
            f"cannot create the folder of {safe_url(url)}: {exc.strerror or exc}"
        ) from None


def _sqlite_file(url: URL) -> Path | None:
    """The file of a SQLite URL that names a plain path; None for `:memory:` or a `file:`
    URI (`?uri=true`), which are left to SQLite."""
    if url.database and url.database != ":memory:" and "uri" not in url.query:
        return Path(url.database)
    return None


def _create_engine(url: URL, sqlite_synchronous: str, **kwargs: Any) -> Engine:
    # A statement's parameters are personal data and blind indexes: never in an error message,
    # hence never in a log.
    kwargs.setdefault("hide_parameters", True)
    if url.get_backend_name() == "sqlite":
        file = _sqlite_file(url)
        if file is not None:
            file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            # Made here for its owner only; SQLite gives its -wal and -shm files the same mode.
            with contextlib.suppress(FileExistsError):
                os.close(os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        engine = create_engine(url, connect_args={"check_same_thread": False}, **kwargs)
        setup_lock = Path(f"{file}-setup.lock") if file is not None else None
        event.listen(
            engine, "connect", functools.partial(_sqlite_pragmas, setup_lock, sqlite_synchronous)
        )
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if url.get_backend_name() == "postgresql":
        kwargs["connect_args"] = {**postgres_connect_args(url), **kwargs.get("connect_args", {})}
    # No ping before each checkout: it is a round trip in every unit of work. A connection the
    # server closed (a restart, a terminated backend) is found without one: its socket has
    # the server's goodbye waiting. Dropped without a word (a network gone), it fails its
    # first statement as a disconnect, and SQLAlchemy discards the pool's older connections.
    engine = create_engine(url, **kwargs)
    event.listen(engine, "checkout", refuse_closed_connection)
    return engine


def postgres_connect_args(url: URL) -> dict[str, Any]:
    """An unreachable host fails in seconds rather than after the system's TCP timeout,
    unless the URL sets its own `connect_timeout`."""
    return {} if "connect_timeout" in url.query else {"connect_timeout": 10}


def refuse_closed_connection(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """Checkout listener: a pooled psycopg connection whose server has closed it is replaced
    (SQLAlchemy tries another on `DisconnectionError`). An idle connection has nothing to
    read unless the server said something, and to an idle connection of Charter's it says
    nothing but goodbye (a terminated backend's FATAL message, then the end of the stream).
    Looking is a local call, not a round trip. (An asyncio connection comes wrapped in
    SQLAlchemy's adapter, which holds psycopg's as `driver_connection`.)"""
    psycopg_connection = getattr(dbapi_connection, "driver_connection", dbapi_connection)
    try:
        waiting, _, _ = select.select([psycopg_connection.pgconn.socket], [], [], 0)
    except Exception as exc:  # noqa: BLE001 - any failure here means the socket is gone
        raise DisconnectionError(str(exc)) from None
    if waiting:
        raise DisconnectionError("the server closed the connection")


def failure_reason(exc: DBAPIError, url: str) -> str:
    """The first line of the driver's message, with the URL's password hidden should it appear."""
    lines = str(exc.orig if exc.orig is not None else exc).strip().splitlines()
    reason = lines[0].strip() if lines else type(exc.orig).__name__
    try:
        password = make_url(url).password
    except (ArgumentError, ValueError):
        password = None
    return reason.replace(password, "***") if password else reason


class _SqliteWriters:
    """One SQLite writer at a time: a thread lock within the process, and an exclusive `flock`
    on a file beside the database across processes. SQLite's own busy handler polls with
    growing sleeps; a process blocked on the flock wakes the moment the writer before it
    is done, which keeps several `charter serve` workers from idling on each other."""

    def __init__(self, file: Path | None) -> None:
        self._thread = threading.Lock()
        self._path = f"{file}-writer.lock" if file is not None else None
        self._fd: int | None = None

    def __enter__(self) -> None:
        self._thread.acquire()
        self._lock_file(fcntl.LOCK_EX)

    def take_now(self) -> bool:
        """Take both locks if that needs no wait (then leave with `__exit__`); else take
        neither and return False."""
        if not self._thread.acquire(blocking=False):
            return False
        if not self._lock_file(fcntl.LOCK_EX | fcntl.LOCK_NB):
            self._thread.release()
            return False
        return True

    def _lock_file(self, how: int) -> bool:
        if self._path is None:
            return True
        try:
            if self._fd is None:
                self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self._fd, how)
        except BlockingIOError:
            return False  # held by another process, and `how` said not to wait
        except OSError:
            # A read-only folder: BEGIN IMMEDIATE and the busy timeout still serialise writers.
            self._path = None
        return True

    def __exit__(self, *_: object) -> None:
        try:
            if self._path is not None and self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._thread.release()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class Database:
    """Units of work over one engine."""

    def __init__(self, engine: Engine, *, sqlite_synchronous: str = "normal") -> None:
        self.engine = engine
        self.is_sqlite = engine.dialect.name == "sqlite"
        # Whether a small write costs less than a hand-off to a thread and back: on SQLite,
        # a local file whose commit (WAL, synchronous NORMAL) waits for no disk. With FULL
        # each commit waits for an fsync, which must not hold up the event loop.
        self.writes_quickly = self.is_sqlite and sqlite_synchronous == "normal"
        self._read = sessionmaker(bind=engine, expire_on_commit=False)
        self._write = sessionmaker(
            bind=engine.execution_options(charter_write=True), expire_on_commit=False
        )
        # One read statement needs no transaction around it: on PostgreSQL that saves the
        # BEGIN and ROLLBACK round trips. SQLite keeps its explicit BEGIN (see `_sqlite_begin`).
        self._glance = (
            self._read
            if self.is_sqlite
            else sessionmaker(
                bind=engine.execution_options(isolation_level="AUTOCOMMIT"),
                expire_on_commit=False,
            )
        )
        self._writers = _SqliteWriters(_sqlite_file(engine.url)) if self.is_sqlite else None
        # The connection `quick_reading` keeps for itself, opened on first use.
        self._quick: Connection | None = None
        self._quick_lock = threading.Lock()
        # The connection `writing_now` keeps for itself, used under the write lock only.
        self._quick_writer: Connection | None = None
        # The connection `checkpoint` keeps for itself.
        self._checkpointer: Connection | None = None

    @classmethod
    def connect(
        cls,
        url: str,
        *,
        pooled: bool = True,
        sqlite_synchronous: str = "normal",
        pool_size: int = DEFAULT_POOL_SIZE,
    ) -> Database:
        """Open the database at `url` and check that it answers (`sqlite_synchronous` and
        `pool_size`: see `Settings`)."""
        options: dict[str, Any] = {"sqlite_synchronous": sqlite_synchronous}
        if pooled:
            # Connections kept open for the units of work running at once. Past it, up to
            # POOL_OVERFLOW more are opened for a burst and closed after their unit: a steady
            # load above the pool would open a PostgreSQL backend (a process) per request.
            options.update(pool_size=pool_size, max_overflow=POOL_OVERFLOW)
        else:
            options["poolclass"] = NullPool
        engine = make_engine(url, **options)
        try:
            with engine.connect() as connection:
                connection.exec_driver_sql("SELECT 1")
        except DBAPIError as exc:
            engine.dispose()
            raise DatabaseUnavailable(
                f"cannot connect to {safe_url(url)}: {failure_reason(exc, url)}"
            ) from None
        return cls(engine, sqlite_synchronous=sqlite_synchronous)

    @contextlib.contextmanager
    def reading(self) -> Iterator[Session]:
        """A session for reads; it never commits."""
        with self._read() as session:
            yield session

    @contextlib.contextmanager
    def writing(self) -> Iterator[Session]:
        """A session whose work commits when the block ends, or rolls back on an error."""
        with self._writers or contextlib.nullcontext(), _committing(self._write()) as session:
            yield session

    @contextlib.contextmanager
    def writing_now(self) -> Iterator[Session | None]:
        """`writing()` if it can start without waiting, else None (nothing begun): on
        SQLite (`writes_quickly`), when no other writer holds the write lock this instant.
        For a small unit of work on the event loop's own thread, which must never wait for
        a lock that a thread or another process holds."""
        if not self.writes_quickly or self._writers is None or not self._writers.take_now():
            yield None
            return
        try:
            if self._quick_writer is None:
                # Outside the pool, like `quick_reading`'s: the event loop must never wait for
                # a pooled connection that a thread holds while it waits for the loop.
                self._quick_writer = self._own_connection(charter_write=True)
            with _committing(Session(bind=self._quick_writer, expire_on_commit=False)) as session:
                yield session
        finally:
            self._writers.__exit__()

    @contextlib.contextmanager
    def glancing(self) -> Iterator[Session]:
        """A session for a single read statement, which on PostgreSQL runs outside any
        transaction; it never commits."""
        with self._glance() as session:
            yield session

    @property
    def reads_quickly(self) -> bool:
        """Whether a read of a few indexed rows costs less than a hand-off to a thread and
        back: on SQLite, a local file, it does; PostgreSQL is a round trip away."""
        return self.is_sqlite

    @contextlib.contextmanager
    def quick_reading(self) -> Iterator[Session]:
        """`reading()` for a few indexed rows on the event loop's own thread (see
        `reads_quickly`). It runs on a connection of its own, never one from the pool:
        threads hold pooled connections while they work, and a loop that waited for one
        would wait for work that needs the loop to finish."""
        if not self._quick_lock.acquire(blocking=False):
            # Never on one event loop: the connection is in use by another thread already.
            with self.reading() as session:
                yield session
            return
        try:
            if self._quick is None:
                # Outside the pool: a pooled connection kept for this would leave the pool
                # one short for everyone else.
                self._quick = self._own_connection()
            with Session(bind=self._quick, expire_on_commit=False) as session:
                yield session
        finally:
            self._quick_lock.release()

    def checkpoint(self) -> None:
        """On SQLite, copy what the write-ahead log holds into the database file, without
        waiting for or holding up any writer (a PASSIVE checkpoint). A serving process calls
        this every second from a thread of its own; otherwise the commit that fills the log
        to `wal_autocheckpoint` would pay for the whole copy (100-200 ms for ~40 MB) while
        every request behind it waits."""
        if not self.is_sqlite:
            return
        if self._checkpointer is None:
            self._checkpointer = self._own_connection(isolation_level="AUTOCOMMIT")
        self._checkpointer.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").all()

    def _own_connection(self, **options: Any) -> Connection:
        url = self.engine.url.render_as_string(hide_password=False)
        engine = make_engine(url, poolclass=NullPool)
        return (engine.execution_options(**options) if options else engine).connect()

    def dispose(self) -> None:
        for own in (self._quick, self._quick_writer, self._checkpointer):
            if own is not None:
                own.close()
                own.engine.dispose()
        self._quick = self._quick_writer = self._checkpointer = None
        self.engine.dispose()
        if self._writers is not None:
            self._writers.close()


def committed(session: Session, work: Callable[[Session], T]) -> T:
    """`work(session)`, committed, or rolled back if it raises; the session closed after."""
    with _committing(session):
        return work(session)


@contextlib.contextmanager
def _committing(session: Session) -> Iterator[Session]:
    """`session`, committed when the block ends, or rolled back on an error; closed after."""
    with session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def conflict_insert(bind: Session | Connection | str) -> Any:
    """The dialect's `insert` construct, which offers ON CONFLICT (SQLite and PostgreSQL), for
    a session, a connection, or a dialect's name."""
    if isinstance(bind, Connection):
        dialect = bind.dialect.name
    elif isinstance(bind, Session):
        dialect = bind.get_bind().dialect.name
    else:
        dialect = bind
    if dialect == "postgresql":
        return postgresql_insert
    return sqlite_insert


def in_chunks(values: Iterable[T], size: int = 2000) -> Iterator[list[T]]:
    """`values` in lists of at most `size`, for `IN (...)` queries under the drivers' limits
    on parameters (SQLite: 32,766; PostgreSQL: 65,535)."""
    chunk: list[T] = []
    for value in values:
        chunk.append(value)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def select_in(connection: Connection, sql: str, values: Iterable[Any]) -> Iterator[Any]:
    """The rows of `sql` for every value: its `{marks}` becomes one parameter per value,
    run in chunks under the drivers' limits (see `in_chunks`). Straight through the driver:
    the fast path for look-ups of a whole batch. `sql` is Charter's own text, never input."""
    mark = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    for chunk in in_chunks(values):
        statement = sql.format(marks=", ".join([mark] * len(chunk)))
        yield from connection.exec_driver_sql(statement, tuple(chunk)).all()


def bulk_insert(
    connection: Connection,
    table: str,
    columns: tuple[str, ...],
    rows: list[tuple[Any, ...]],
    *,
    skip_conflicts: bool = False,
) -> None:
    """Insert many rows through the driver's executemany: the fast path for event batches.
    With `skip_conflicts`, a row that would break a unique constraint is left out.

    Values must already be in their stored form (text for `UTCDateTime`, bytes for blobs).
    """
    if not rows:
        return
    style = connection.dialect.paramstyle
    marks = ", ".join("?" if style == "qmark" else "%s" for _ in columns)
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"  # noqa: S608 - names are ours
    if skip_conflicts:
        sql += " ON CONFLICT DO NOTHING"
    connection.exec_driver_sql(sql, rows)
