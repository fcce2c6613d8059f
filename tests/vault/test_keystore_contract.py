"""The key store contract (STYLE.md: a real implementation and a simple one pass one shared
test). Every test runs against `SqlKeyStore` on the backend under test and `MemoryKeyStore`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import Engine

from charter.db import make_engine
from charter.vault.crypto import DecryptionFailed, new_key
from charter.vault.keystore import (
    KeyStore,
    MasterKeyChanged,
    MasterKeyMismatch,
    MemoryKeyStore,
    SqlKeyStore,
    WrappedKey,
)

pytestmark = pytest.mark.clause("C2")

WHERE = b"record:1:p-1"


@dataclass
class Subject:
    """A store under test, and how to open it again (as a restarted process would)."""

    store: KeyStore
    engine: Engine | None = None

    def reopen(self, master: bytes) -> KeyStore:
        """The same keys through a fresh instance (no cache), or the same instance in memory."""
        if self.engine is None:
            return self.store
        return SqlKeyStore(self.engine, master)


@pytest.fixture(scope="module")
def keystore_engine(database_url_factory: Callable[[], str]) -> Iterator[Engine]:
    engine = make_engine(database_url_factory())
    yield engine
    engine.dispose()


@pytest.fixture
def empty_engine(keystore_engine: Engine) -> Engine:
    """The key store database, emptied: each test starts a store of its own."""
    WrappedKey.metadata.drop_all(keystore_engine)
    return keystore_engine


@pytest.fixture(params=["sql", "memory"])
def subject(request: pytest.FixtureRequest, master: bytes) -> Subject:
    if request.param == "memory":
        return Subject(MemoryKeyStore())
    engine = request.getfixturevalue("empty_engine")
    return Subject(SqlKeyStore(engine, master), engine)


def test_a_person_without_a_key_has_no_sealer(subject: Subject) -> None:
    assert subject.store.sealer("nobody") is None
    assert subject.store.sealers(["nobody", "no-one"], create=False) == {}


def test_a_created_key_is_the_one_returned_afterwards(subject: Subject, master: bytes) -> None:
    store = subject.store
    created = store.sealers(["p-1", "p-2", "p-1"], create=True)
    assert set(created) == {"p-1", "p-2"}
    sealed = created["p-1"].seal(b"Zebulon Testperson", WHERE)

    again = store.sealer("p-1")
    assert again is not None
    assert again.open(sealed, WHERE) == b"Zebulon Testperson"
    # Asking to create a key that exists reuses it: it must not replace the key.
    reused = store.sealers(["p-1"], create=True)["p-1"]
    assert reused.open(sealed, WHERE) == b"Zebulon Testperson"
    fresh = subject.reopen(master).sealer("p-1")
    assert fresh is not None
    assert fresh.open(sealed, WHERE) == b"Zebulon Testperson"


def test_people_have_keys_of_their_own(subject: Subject) -> None:
    sealers = subject.store.sealers(["p-1", "p-2"], create=True)
    sealed = sealers["p-1"].seal(b"zebulon@example.com", WHERE)
    with pytest.raises(DecryptionFailed):
        sealers["p-2"].open(sealed, WHERE)


def test_without_create_only_existing_keys_are_returned(subject: Subject) -> None:
    subject.store.sealers(["p-1"], create=True)
    found = subject.store.sealers(["p-1", "p-2"], create=False)
    assert set(found) == {"p-1"}
    assert subject.store.sealer("p-2") is None


def test_destroy_leaves_no_key_and_earlier_data_unreadable(subject: Subject, master: bytes) -> None:
    store = subject.store
    sealers = store.sealers(["p-1", "p-2"], create=True)
    sealed = sealers["p-1"].seal(b"203.0.113.9", WHERE)
    kept = sealers["p-2"].seal(b"198.51.100.4", WHERE)

    assert store.destroy(["p-1"]) == 1

    assert store.sealer("p-1") is None
    assert store.sealers(["p-1"], create=False) == {}
    assert subject.reopen(master).sealer("p-1") is None
    # A new key for the same id is a different key: the old data stays unreadable.
    replacement = store.sealers(["p-1"], create=True)["p-1"]
    with pytest.raises(DecryptionFailed):
        replacement.open(sealed, WHERE)
    other = store.sealer("p-2")
    assert other is not None
    assert other.open(kept, WHERE) == b"198.51.100.4"


def test_destroying_twice_or_an_unknown_person_destroys_nothing(subject: Subject) -> None:
    subject.store.sealers(["p-1"], create=True)
    assert subject.store.destroy(["p-1"]) == 1
    assert subject.store.destroy(["p-1", "never-seen"]) == 0
    assert subject.store.destroy([]) == 0


def test_new_keys_stay_unsettled_until_kept_or_destroyed(subject: Subject, master: bytes) -> None:
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)
    earlier = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    subject.store.sealers(["p-kept", "p-orphan", "p-erased"], create=True)

    store = subject.reopen(master)
    assert sorted(store.unsettled(later)) == ["p-erased", "p-kept", "p-orphan"]
    assert store.unsettled(earlier) == []
    store.destroy(["p-erased"])
    assert sorted(store.unsettled(later)) == ["p-kept", "p-orphan"]

    assert store.settle(["p-kept"], ["p-orphan"]) == 1

    assert store.unsettled(later) == []
    assert store.sealer("p-kept") is not None
    assert subject.reopen(master).sealer("p-orphan") is None


def test_the_index_key_is_stable(subject: Subject, master: bytes) -> None:
    first = subject.store.index_key()
    assert len(first) == 32
    assert subject.store.index_key() == first
    subject.store.sealers(["p-1"], create=True)
    subject.store.destroy(["p-1"])
    assert subject.store.index_key() == first
    assert subject.reopen(master).index_key() == first


def test_rewrap_keeps_every_key_and_the_index_key(subject: Subject, master: bytes) -> None:
    store = subject.store
    people = [f"p-{n}" for n in range(5)]
    sealers = store.sealers(people, create=True)
    sealed = {p: sealers[p].seal(p.encode(), WHERE) for p in people}
    index_key = store.index_key()
    new_master = new_key()

    assert store.rewrap(new_master) == len(people)

    for reader in (store, subject.reopen(new_master)):
        assert reader.index_key() == index_key
        for person, value in sealed.items():
            sealer = reader.sealer(person)
            assert sealer is not None
            assert sealer.open(value, WHERE) == person.encode()
    # New keys after a rewrap are kept too.
    created = store.sealers(["late"], create=True)["late"].seal(b"late", WHERE)
    late = subject.reopen(new_master).sealer("late")
    assert late is not None
    assert late.open(created, WHERE) == b"late"


def test_after_rewrap_the_old_master_no_longer_opens_the_store(empty_engine: Engine) -> None:
    old, new = new_key(), new_key()
    store = SqlKeyStore(empty_engine, old)
    store.sealers(["p-1"], create=True)
    store.rewrap(new)
    with pytest.raises(MasterKeyMismatch):
        SqlKeyStore(empty_engine, old)
    with pytest.raises(MasterKeyMismatch):
        SqlKeyStore(empty_engine, new_key())
    assert SqlKeyStore(empty_engine, new).sealer("p-1") is not None


def test_another_process_forgets_a_destroyed_key_once_its_cache_entry_expires(
    empty_engine: Engine, master: bytes
) -> None:
    """Two servers on one key store: the one that erases drops the key at once; the other
    holds it in memory no longer than the cache's time to live."""
    now = [1000.0]
    other = SqlKeyStore(empty_engine, master, cache_ttl_s=60, monotonic=lambda: now[0])
    erasing = SqlKeyStore(empty_engine, master)
    sealed = erasing.sealers(["p-1"], create=True)["p-1"].seal(b"value", WHERE)
    assert other.sealer("p-1") is not None  # now cached in the other process

    erasing.destroy(["p-1"])

    assert erasing.sealer("p-1") is None
    now[0] += 59
    assert other.sealer("p-1") is not None
    now[0] += 1
    assert other.sealer("p-1") is None
    assert SqlKeyStore(empty_engine, master).sealer("p-1") is None
    with pytest.raises(DecryptionFailed):
        SqlKeyStore(empty_engine, master).sealers(["p-1"], create=True)["p-1"].open(sealed, WHERE)


def test_a_server_left_on_the_old_master_key_refuses_instead_of_writing_keys_none_could_open(
    empty_engine: Engine, master: bytes
) -> None:
    """`charter keys rotate-master` while a server still runs with the old master key."""
    running = SqlKeyStore(empty_engine, master, cache_ttl_s=0)  # nothing stays cached
    running.sealers(["known"], create=True)
    new_master = new_key()
    SqlKeyStore(empty_engine, master).rewrap(new_master)

    with pytest.raises(MasterKeyChanged) as creating:
        running.sealers(["newcomer"], create=True)
    assert creating.value.code == "master_key_changed"
    with pytest.raises(MasterKeyChanged):
        running.sealer("known")
    restarted = SqlKeyStore(empty_engine, new_master)
    assert restarted.sealer("newcomer") is None  # nothing was wrapped under the old key
    assert restarted.sealer("known") is not None
