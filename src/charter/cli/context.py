"""What commands that touch state need: settings, the database, the policy, a clock.

Every start-up failure becomes a one-line message and exit 1, never a traceback.
"""

from __future__ import annotations

import contextlib
import getpass
from collections.abc import Callable, Iterator

from sqlalchemy.orm import Session

from charter.boot import StartupError, is_data_folder, load_compiled, open_database, open_keystore
from charter.cli.output import fail
from charter.clock import SystemClock
from charter.db import Database
from charter.errors import CharterError
from charter.policy.compiled import CompiledPolicy
from charter.settings import Settings, SettingsError
from charter.vault.keystore import SqlKeyStore

clock = SystemClock()


def settings(*, require_home: bool = True) -> Settings:
    """The settings; unless told otherwise (`charter init`), only where a Charter data
    folder exists: a command run elsewhere must not make an empty database and report on it
    as if it were Charter's."""
    try:
        found = Settings.from_env()
    except SettingsError as exc:
        fail(str(exc))
    if require_home and not is_data_folder(found.home):
        fail(
            f"no Charter data folder at {found.home}: run 'charter init' or set CHARTER_HOME",
            code=2,
        )
    return found


def database() -> Database:
    """The database, migrated. A command is short: its connections close with each unit of
    work instead of waiting in a pool (which would leave them open when run in process)."""
    try:
        return open_database(settings(), pooled=False)
    except StartupError as exc:
        fail(str(exc))


def policy() -> CompiledPolicy:
    try:
        return load_compiled(settings())[0]
    except StartupError as exc:
        fail(str(exc))


def operator() -> str:
    """How the audit log names a local operator of the CLI."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


def reading() -> contextlib.AbstractContextManager[Session]:
    """A unit of work that only reads; a refusal is a one-line error and exit 1."""
    return _unit(Database.reading)


def writing() -> contextlib.AbstractContextManager[Session]:
    """A unit of work that commits at the end; a refusal is a one-line error and exit 1."""
    return _unit(Database.writing)


@contextlib.contextmanager
def _unit(
    kind: Callable[[Database], contextlib.AbstractContextManager[Session]],
) -> Iterator[Session]:
    db = database()
    try:
        with kind(db) as session:
            yield session
    except CharterError as exc:
        fail(exc.message)
    finally:
        db.dispose()


@contextlib.contextmanager
def keystore(found: Settings) -> Iterator[SqlKeyStore]:
    """The key store of `found`; one that cannot be opened is a one-line error and exit 1."""
    try:
        store = open_keystore(found)
    except StartupError as exc:
        fail(str(exc))
    try:
        yield store
    finally:
        store.engine.dispose()
