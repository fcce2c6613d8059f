"""Per-person data keys, kept apart from the data and wrapped by a master key.

`KeyStore` is the protocol; `SqlKeyStore` keeps wrapped keys in a database of their own (a
SQLite file beside the data, or its own PostgreSQL database), `MemoryKeyStore` in a dict.
The master key is never stored in either: it comes from a key file or CHARTER_MASTER_KEY.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Protocol

from sqlalchemy import Engine, LargeBinary, MetaData, String, delete, inspect, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from charter.db import UTCDateTime, in_chunks
from charter.errors import CharterError
from charter.vault.crypto import DamagedSealer, DecryptionFailed, KeyDamaged, Sealer, new_key

_CHECK_PLAINTEXT = b"charter master key check"
_CHECK_ID = "__master_key_check__"
_INDEX_ID = "__blind_index__"
_RESERVED = frozenset({_CHECK_ID, _INDEX_ID})
# How many keys `SqlKeyStore.rewrap` re-wraps between two reports of its progress.
_REWRAP_STEP = 500


class MasterKeyMismatch(Exception):
    """The master key given cannot unwrap the keys in the store."""


class MasterKeyChanged(CharterError):
    """The store was re-wrapped under another master key after this process opened it
    (`charter keys rotate-master` while a server ran): this process can neither open the
    keys nor wrap new ones that the store's master key would open."""

    status = 503
    code = "master_key_changed"


class KeyStore(Protocol):
    """Where data keys live. Implementations must pass tests/vault/test_keystore_contract.py."""

    def sealer(self, person_id: str) -> Sealer | None:
        """The person's sealer, or None if they have no key (never had one, or erased)."""
        ...

    def sealers(self, person_ids: Iterable[str], *, create: bool) -> dict[str, Sealer]:
        """Sealers for many people; with `create`, people without a key get a new one."""
        ...

    def destroy(self, person_ids: Iterable[str]) -> int:
        """Destroy the people's keys for good; returns how many were destroyed."""
        ...

    def rewrap(self, new_master: bytes, progress: Callable[[int, int], None] | None = None) -> int:
        """Re-wrap every data key under `new_master`; returns how many keys. `progress(done,
        total)` is called as the work goes on (the store's rows, its own among them)."""
        ...

    def index_key(self) -> bytes:
        """The key of the blind indexes (e-mail, visitor id); it survives master rotation."""
        ...

    def unsettled(self, created_before: dt.datetime) -> list[str]:
        """The people whose keys were created before `created_before` and not yet settled:
        a key is made before the data transaction that needs it commits, so one of these
        may belong to a transaction that rolled back or never finished."""
        ...

    def settle(self, kept: Iterable[str], orphaned: Iterable[str]) -> int:
        """Mark the `kept` people's keys as in use; destroy the `orphaned` ones (their people
        were never committed). Returns how many keys were destroyed."""
        ...


def sealers_to_write(keys: KeyStore, person_ids: Iterable[str]) -> dict[str, Sealer]:
    """`keys.sealers(person_ids, create=True)`, for sealing new values: refused at once
    (`KeyDamaged`, recorded by whoever answers it) if a person's key was altered in the
    store, before anything is written."""
    sealers = keys.sealers(person_ids, create=True)
    damaged = sorted(p for p, sealer in sealers.items() if isinstance(sealer, DamagedSealer))
    if damaged:
        raise KeyDamaged(
            "the person's data key is damaged; nothing can be sealed for them",
            targets=tuple(f"person:{person_id}" for person_id in damaged),
            details={"while": "writing", "keys": len(damaged)},
        )
    return sealers


class _KeyBase(DeclarativeBase):
    metadata = MetaData()


class WrappedKey(_KeyBase):
    __tablename__ = "data_keys"

    person_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    wrapped: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class UnsettledKey(_KeyBase):
    """A data key made for a transaction of the data database that had not committed yet;
    settled (kept, or destroyed if its person never existed) by the recovery at start."""

    __tablename__ = "unsettled_keys"

    person_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)


def _associated(person_id: str) -> bytes:
    return f"data-key:{person_id}".encode()


# How long an unwrapped key may stay in a process's memory. Erasure drops the key from the
# cache of the process that erases; other processes (CHARTER_WORKERS, the CLI) forget it
# within this time. They never use it meanwhile: every use and every write first checks in
# the database that the person is not erased.
CACHE_TTL_S = 60.0


class _Cache:
    """A bounded LRU of unwrapped sealers, so a hot person's key is unwrapped once; entries
    expire `ttl_s` after they were unwrapped."""

    def __init__(self, size: int, ttl_s: float, monotonic: Callable[[], float]) -> None:
        self._size = size
        self._ttl_s = ttl_s
        self._monotonic = monotonic
        self._items: OrderedDict[str, tuple[Sealer, float]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, person_id: str) -> Sealer | None:
        with self._lock:
            found = self._items.get(person_id)
            if found is None:
                return None
            if found[1] <= self._monotonic():
                del self._items[person_id]
                return None
            self._items.move_to_end(person_id)
            return found[0]

    def put(self, person_id: str, sealer: Sealer) -> None:
        with self._lock:
            self._items[person_id] = (sealer, self._monotonic() + self._ttl_s)
            self._items.move_to_end(person_id)
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def drop(self, person_ids: Iterable[str]) -> None:
        with self._lock:
            for person_id in person_ids:
                self._items.pop(person_id, None)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_LOCK_CHECK_ROW = (
    select(WrappedKey.person_id).where(WrappedKey.person_id == _CHECK_ID).with_for_update(read=True)
)


def keystore_in_use(engine: Engine) -> bool:
    """True if this key store was already set up under some master key."""
    if not inspect(engine).has_table(WrappedKey.__tablename__):
        return False
    with Session(engine) as session:
        return session.get(WrappedKey, _CHECK_ID) is not None


class SqlKeyStore:
    """Wrapped data keys in their own database."""

    def __init__(
        self,
        engine: Engine,
        master: bytes,
        *,
        cache_size: int = 10_000,
        cache_ttl_s: float = CACHE_TTL_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        # Writes on SQLite begin IMMEDIATE (see `charter.db`): the check of the master key
        # and the keys written after it are one atomic step.
        self._writer = engine.execution_options(charter_write=True)
        self._master = Sealer(master)
        self._cache = _Cache(cache_size, cache_ttl_s, monotonic)
        self._index_key: bytes | None = None
        _KeyBase.metadata.create_all(engine)
        self._check_master()

    def _check_master(self) -> None:
        with Session(self.engine) as session:
            made = session.get(WrappedKey, _CHECK_ID) is None
        if made:
            self._reserved_row(_CHECK_ID, _CHECK_PLAINTEXT)
        with Session(self.engine) as session:
            if not self._master_opens(session):
                raise MasterKeyMismatch(
                    "the master key does not match the key store: it is wrong or was replaced"
                )

    def _reserved_row(self, row_id: str, plaintext: bytes) -> None:
        """Add the reserved row `row_id` (wrapping `plaintext`) unless it is there. Processes
        starting at once may all find it missing: each adds it in a write transaction
        (IMMEDIATE on SQLite, so none fails on upgrading a read), and one that loses the
        race on PostgreSQL finds the winner's row."""
        with Session(self._writer) as session:
            if session.get(WrappedKey, row_id) is not None:
                return
            self._wrap(session, row_id, plaintext)
            try:
                session.commit()
            except IntegrityError:
                session.rollback()

    def _wrap(self, session: Session, person_id: str, key: bytes) -> None:
        """Add `key`, wrapped under the master key, as `person_id`'s."""
        session.add(
            WrappedKey(
                person_id=person_id,
                created_at=dt.datetime.now(dt.UTC),
                wrapped=self._master.seal(key, _associated(person_id)),
            )
        )

    def _master_opens(self, session: Session) -> bool:
        """Whether this process's master key opens the store's check row."""
        check = session.get(WrappedKey, _CHECK_ID)
        if check is None:
            return False
        try:
            self._master.open(check.wrapped, _associated(_CHECK_ID))
        except DecryptionFailed:
            return False
        return True

    def sealer(self, person_id: str) -> Sealer | None:
        return self.sealers([person_id], create=False).get(person_id)

    def sealers(self, person_ids: Iterable[str], *, create: bool) -> dict[str, Sealer]:
        found: dict[str, Sealer] = {}
        missing = []
        for person_id in dict.fromkeys(person_ids):
            cached = self._cache.get(person_id)
            if cached is not None:
                found[person_id] = cached
            else:
                missing.append(person_id)
        if not missing:
            return found
        with Session(self.engine) as session:
            for chunk in in_chunks(missing):
                for row in session.scalars(
                    select(WrappedKey).where(WrappedKey.person_id.in_(chunk))
                ):
                    try:
                        found[row.person_id] = Sealer(self._unwrap(session, row))
                    except DecryptionFailed:
                        # This one key was altered in the store: its person's data reads as
                        # unreadable, never as an error (and it is not cached).
                        found[row.person_id] = DamagedSealer()
                        continue
                    self._cache.put(row.person_id, found[row.person_id])
        new = [person_id for person_id in missing if person_id not in found]
        if create and new:
            found.update(self._create(new))
        return found

    def _unwrap(self, session: Session, row: WrappedKey) -> bytes:
        try:
            return self._master.open(row.wrapped, _associated(row.person_id))
        except DecryptionFailed:
            self._ensure_master(session)
            raise  # the master key is right: this one row is damaged

    def _ensure_master(self, session: Session) -> None:
        """Raise `MasterKeyChanged` unless this process's master key still opens the store."""
        if not self._master_opens(session):
            raise MasterKeyChanged(
                "the key store's master key was changed after this server started; "
                "restart it with the new key",
            )

    def _create(self, person_ids: list[str]) -> dict[str, Sealer]:
        """New keys for `person_ids`, wrapped only after checking, in the same transaction,
        that the master key still opens the store: a key wrapped under a replaced master
        key could never be opened again, nor anything sealed under it."""
        created: dict[str, Sealer] = {}
        with Session(self._writer) as session:
            # The check row locked for reading: a rotation locks it first (see `rewrap`),
            # so either it waits for these keys and re-wraps them, or they wait for it and
            # find the new master key here.
            session.execute(_LOCK_CHECK_ROW)
            self._ensure_master(session)
            now = dt.datetime.now(dt.UTC)
            for person_id in person_ids:
                key = new_key()
                self._wrap(session, person_id, key)
                session.add(UnsettledKey(person_id=person_id, created_at=now))
                created[person_id] = Sealer(key)
            session.commit()
        for person_id, sealer in created.items():
            self._cache.put(person_id, sealer)
        return created

    def index_key(self) -> bytes:
        if self._index_key is None:
            with Session(self.engine) as session:
                missing = session.get(WrappedKey, _INDEX_ID) is None
            if missing:
                self._reserved_row(_INDEX_ID, new_key())
            with Session(self.engine) as session:
                row = session.get(WrappedKey, _INDEX_ID)
                if row is None:  # pragma: no cover - made just above or by another process
                    raise RuntimeError("the blind index key could not be made")
                self._index_key = self._master.open(row.wrapped, _associated(_INDEX_ID))
        return self._index_key

    def destroy(self, person_ids: Iterable[str]) -> int:
        ids = [p for p in person_ids if p not in _RESERVED]
        # Dropped before and after: a `sealers` call running meanwhile may have put a key
        # back into the cache from a row this deletes.
        self._cache.drop(ids)
        destroyed = 0
        with Session(self.engine) as session:
            for chunk in in_chunks(ids):
                result = session.execute(delete(WrappedKey).where(WrappedKey.person_id.in_(chunk)))
                session.execute(delete(UnsettledKey).where(UnsettledKey.person_id.in_(chunk)))
                destroyed += int(getattr(result, "rowcount", 0) or 0)
            session.commit()
        self._cache.drop(ids)
        return destroyed

    def unsettled(self, created_before: dt.datetime) -> list[str]:
        with Session(self.engine) as session:
            return list(
                session.scalars(
                    select(UnsettledKey.person_id)
                    .where(UnsettledKey.created_at < created_before)
                    .order_by(UnsettledKey.created_at)
                )
            )

    def settle(self, kept: Iterable[str], orphaned: Iterable[str]) -> int:
        kept_ids = list(kept)
        with Session(self.engine) as session:
            for chunk in in_chunks(kept_ids):
                session.execute(delete(UnsettledKey).where(UnsettledKey.person_id.in_(chunk)))
            session.commit()
        return self.destroy(orphaned)

    def rewrap(self, new_master: bytes, progress: Callable[[int, int], None] | None = None) -> int:
        sealer = Sealer(new_master)
        count = 0
        with Session(self._writer) as session:
            # Lock the check row before reading the keys: a server creating keys meanwhile
            # either finishes first (its keys are read below and re-wrapped) or waits and
            # then finds the new master key (`_create`).
            session.execute(_LOCK_CHECK_ROW.with_for_update())
            rows = session.scalars(select(WrappedKey)).all()
            for done, row in enumerate(rows, start=1):
                plain = self._master.open(row.wrapped, _associated(row.person_id))
                row.wrapped = sealer.seal(plain, _associated(row.person_id))
                count += row.person_id not in _RESERVED
                if progress is not None and (done % _REWRAP_STEP == 0 or done == len(rows)):
                    # Written as it goes, in the same transaction, so that what is reported
                    # done is done but for the commit (instead of all of it at the commit).
                    session.flush()
                    progress(done, len(rows))
            session.commit()
        self._master = sealer
        self._cache.clear()
        return count


class MemoryKeyStore:
    """Data keys in a dict, for tests and in-process experiments; same contract."""

    def __init__(self) -> None:
        self._keys: dict[str, bytes] = {}
        self._unsettled: dict[str, dt.datetime] = {}
        self._lock = threading.Lock()
        self._index_key = new_key()

    def index_key(self) -> bytes:
        return self._index_key

    def sealer(self, person_id: str) -> Sealer | None:
        key = self._keys.get(person_id)
        return Sealer(key) if key is not None else None

    def sealers(self, person_ids: Iterable[str], *, create: bool) -> dict[str, Sealer]:
        found = {}
        with self._lock:
            for person_id in person_ids:
                key = self._keys.get(person_id)
                if key is None and create:
                    key = self._keys[person_id] = new_key()
                    self._unsettled[person_id] = dt.datetime.now(dt.UTC)
                if key is not None:
                    found[person_id] = Sealer(key)
        return found

    def destroy(self, person_ids: Iterable[str]) -> int:
        with self._lock:
            ids = list(person_ids)
            for person_id in ids:
                self._unsettled.pop(person_id, None)
            return sum(self._keys.pop(p, None) is not None for p in ids)

    def unsettled(self, created_before: dt.datetime) -> list[str]:
        with self._lock:
            return [p for p, at in self._unsettled.items() if at < created_before]

    def settle(self, kept: Iterable[str], orphaned: Iterable[str]) -> int:
        with self._lock:
            for person_id in kept:
                self._unsettled.pop(person_id, None)
        return self.destroy(orphaned)

    def rewrap(
        self,
        new_master: bytes,  # noqa: ARG002 - keys are held unwrapped here
        progress: Callable[[int, int], None] | None = None,
    ) -> int:
        count = len(self._keys)
        if progress is not None:
            progress(count, count)
        return count
