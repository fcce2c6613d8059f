"""Starting Charter: open the database, apply migrations, load and record the policy.

`charter init`, `charter serve` and the benchmarks share these steps; each failure is a
one-line reason (`StartupError`), never a traceback.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from charter import migrations
from charter.audit.chain import Event, record
from charter.clock import Clock
from charter.db import Database, DatabaseUnavailable, failure_reason, make_engine, safe_url
from charter.policy.compiled import CompiledPolicy, compile_policy
from charter.policy.loader import PolicyError, parse_policy_bytes, read_policy_file
from charter.settings import BUNDLED_POLICY, Settings
from charter.vault.crypto import decode_key, encode_key, new_key
from charter.vault.keystore import MasterKeyMismatch, SqlKeyStore, keystore_in_use
from charter.vault.recovery import recover
from charter.vault.reseal import reseal_old_values
from charter.vault.rotation import settle_rotations


class StartupError(Exception):
    """Charter cannot start; the message says why in one line (or one line per problem)."""


@dataclass
class Booted:
    db: Database
    policy: CompiledPolicy
    keys: SqlKeyStore

    def close(self) -> None:
        self.db.dispose()
        self.keys.engine.dispose()


# Written into CHARTER_HOME by `charter init`: what tells a data folder from any folder.
HOME_MARKER = ".charter-home"


def is_data_folder(home: Path) -> bool:
    """Whether `home` is a Charter data folder (made by `charter init`, or by a Charter from
    before the marker, which left its policy copy or database there)."""
    return home.is_dir() and any(
        (home / name).exists() for name in (HOME_MARKER, "policy", "charter.db", "master.key")
    )


def _private_folder(path: Path) -> bool:
    """Make `path` a folder only its owner may enter (0700); True if it was created."""
    created = not path.exists()
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)  # also an existing folder, and whatever the umask said
    return created


def prepare_home(settings: Settings) -> list[str]:
    """Create CHARTER_HOME (0700), its policy file and master key if missing; say what was
    done. A master key given in CHARTER_MASTER_KEY is checked before anything is made."""
    if settings.master_key is not None:
        master_key(settings)
    done = []
    if _private_folder(settings.home):
        done.append(f"created {settings.home}")
    (settings.home / HOME_MARKER).touch(mode=0o600)
    if not settings.policy_file.exists():
        if not BUNDLED_POLICY.exists():
            raise StartupError(f"no policy file at {settings.policy_file} and none bundled to copy")
        settings.policy_file.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(BUNDLED_POLICY, settings.policy_file)
        done.append(f"copied the OMNI policy to {settings.policy_file}")
    if _adopt_legacy_key_file(settings):
        done.append(f"moved the master key to {settings.master_key_file}, apart from the data")
    if create_master_key(settings):
        done.append(
            f"created the master key {settings.master_key_file} (keep a copy apart from the "
            "data, and out of its backups)"
        )
    return done


def _adopt_legacy_key_file(settings: Settings) -> bool:
    """Move a key file from where Charter once kept it, beside the databases, to its own
    folder; True if it was moved."""
    legacy, current = settings.legacy_master_key_file, settings.master_key_file
    if current.exists() or not legacy.exists() or settings.master_key is not None:
        return False
    _private_folder(current.parent)
    for name in (legacy, legacy.with_name(legacy.name + ".new")):
        if name.exists():
            name.replace(current.with_name(current.name + name.name.removeprefix(legacy.name)))
    return True


def load_compiled(settings: Settings) -> tuple[CompiledPolicy, str]:
    """The policy in force, compiled, and the SHA-256 of its file."""
    # Read once: the digest recorded is of the very bytes that were parsed.
    try:
        data = read_policy_file(settings.policy_file)
        policy = parse_policy_bytes(data, str(settings.policy_file))
    except PolicyError as exc:
        raise StartupError(str(exc)) from None
    return compile_policy(policy), hashlib.sha256(data).hexdigest()


def open_database(settings: Settings, *, pooled: bool = True) -> Database:
    """The database, migrated. Unpooled, each unit of work opens and closes its connection."""
    try:
        db = Database.connect(
            settings.database_url,
            pooled=pooled,
            sqlite_synchronous=settings.sqlite_synchronous,
            pool_size=settings.database_pool_size,
        )
    except DatabaseUnavailable as exc:
        raise StartupError(str(exc)) from None
    try:
        migrations.upgrade(db.engine)
    except migrations.MigrationFailed as exc:
        db.dispose()
        raise StartupError(str(exc)) from None
    return db


def master_key(settings: Settings) -> bytes:
    """The master key from CHARTER_MASTER_KEY or the key file; never written to a database."""
    _adopt_legacy_key_file(settings)
    if settings.master_key is not None:
        try:
            return decode_key(settings.master_key)
        except ValueError as exc:
            raise StartupError(f"CHARTER_MASTER_KEY is unusable: {exc}") from None
    try:
        return _read_key_file(settings.master_key_file)
    except FileNotFoundError:
        raise StartupError(
            f"no master key at {settings.master_key_file} and CHARTER_MASTER_KEY is "
            "not set; without it no personal data can be read"
        ) from None


def pending_master_key_file(settings: Settings) -> Path:
    """Where `charter keys rotate-master` puts the new key until the key file is replaced."""
    return settings.master_key_file.with_name(settings.master_key_file.name + ".new")


def _read_key_file(path: Path) -> bytes:
    try:
        return decode_key(path.read_text(encoding="ascii"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise StartupError(f"{path} is not a master key: {exc}") from None


def create_master_key(settings: Settings) -> bool:
    """Create the key file, unless a key is given or the key store already holds keys."""
    if settings.master_key is not None or settings.master_key_file.exists():
        return False
    engine = _keystore_engine(settings)
    try:
        in_use = keystore_in_use(engine)
    except DBAPIError as exc:
        raise _keystore_unavailable(settings, exc) from None
    finally:
        engine.dispose()
    if in_use:
        raise StartupError(
            f"the key store at {safe_url(settings.keystore_url)} holds keys but "
            f"the master key {settings.master_key_file} is missing; refusing to "
            "create a new one that could not read them"
        )
    _private_folder(settings.master_key_file.parent)
    descriptor = os.open(settings.master_key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="ascii") as file:
        file.write(encode_key(new_key()) + "\n")
    return True


def open_keystore(settings: Settings) -> SqlKeyStore:
    """The key store, opened with the master key.

    Finishes a master key rotation that stopped after the keys were re-wrapped but before the
    key file was replaced: if the key file no longer opens the store and the pending key does,
    the pending key becomes the key file.
    """
    master = master_key(settings)
    pending = pending_master_key_file(settings)
    engine = _keystore_engine(settings)
    try:
        try:
            return SqlKeyStore(engine, master)
        except MasterKeyMismatch:
            if settings.master_key is not None or not pending.exists():
                raise
            store = SqlKeyStore(engine, _read_key_file(pending))
        pending.replace(settings.master_key_file)
        return store
    except MasterKeyMismatch as exc:
        engine.dispose()
        raise StartupError(f"{exc}; refusing to start") from None
    except StartupError:
        engine.dispose()
        raise
    except DBAPIError as exc:
        engine.dispose()
        raise _keystore_unavailable(settings, exc) from None


def _keystore_engine(settings: Settings) -> Engine:
    try:
        return make_engine(settings.keystore_url, sqlite_synchronous=settings.sqlite_synchronous)
    except DatabaseUnavailable as exc:
        raise StartupError(f"key store: {exc}") from None


def _keystore_unavailable(settings: Settings, exc: DBAPIError) -> StartupError:
    url = settings.keystore_url
    return StartupError(f"cannot open the key store at {safe_url(url)}: {failure_reason(exc, url)}")


def boot(settings: Settings, clock: Clock) -> Booted:
    """Open and migrate the database, open the key store, load the policy, audit the load,
    and finish what an interrupted process left (erasures, keys, a master key rotation)."""
    compiled, digest = load_compiled(settings)
    db = open_database(settings)
    try:
        keys = open_keystore(settings)
    except StartupError:
        db.dispose()
        raise
    loaded = Event(
        f"process:{os.getpid()}",
        "policy:version:loaded",
        f"policy:{compiled.version}",
        details={"sha256": digest},
    )
    try:
        with db.writing() as session:
            record(session, clock, loaded)
        # What an earlier process left unfinished across the two databases.
        recover(db, keys, clock)
        settle_rotations(db, clock, master_key(settings), abandon=False)
        reseal_old_values(db, keys, clock)
    except DBAPIError as exc:
        # The first write at start-up: a read-only database fails here, not on a request.
        url = settings.database_url
        Booted(db=db, policy=compiled, keys=keys).close()
        raise StartupError(f"cannot write to {safe_url(url)}: {failure_reason(exc, url)}") from None
    return Booted(db=db, policy=compiled, keys=keys)
