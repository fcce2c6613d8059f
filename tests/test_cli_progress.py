"""Long work shows its progress to a person at a terminal and keeps quiet for machines:
`charter keys rotate-master` over many data keys, `charter audit verify` over a long chain.
The features report through a callback; the CLI draws it as a Rich bar on a terminal only."""

from __future__ import annotations

import datetime as dt
import json
import os
import pty
import select
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from charter.audit.chain import Event, record_many, verify_chain
from charter.cli.main import build_app
from charter.clock import FixedClock
from charter.db import Database, make_engine
from charter.vault.crypto import decode_key, new_key
from charter.vault.keystore import SqlKeyStore
from tests.serving import CHARTER

PEOPLE = 1200  # more than one step of the re-wrap's reports (500 keys)


@pytest.fixture
def home(tmp_path: Path, migrated_url: str, db: Database) -> dict[str, str]:
    """The CHARTER_* settings of a prepared CHARTER_HOME on the test's database (`db` empties
    it after the test); its key store is the SQLite file in the home, on either backend."""
    env = {
        "CHARTER_HOME": str(tmp_path / "home"),
        "CHARTER_DATABASE_URL": migrated_url,
    }
    assert cli(env, "init").exit_code == 0
    return env


def cli(env: dict[str, str], *args: str) -> Result:
    # Settings of the developer's own shell must not point the command elsewhere.
    unset: dict[str, str | None] = dict.fromkeys(
        ("CHARTER_KEYSTORE_URL", "CHARTER_MASTER_KEY", "CHARTER_MASTER_KEY_FILE", "CHARTER_POLICY")
    )
    return CliRunner().invoke(build_app(), list(args), env={**unset, **env})


def on_terminal(env: dict[str, str], *args: str) -> tuple[int, str]:
    """Run `charter ARGS...` with stdin, stdout and stderr on a pseudo-terminal, as a person
    at a terminal does; returns its exit code and all it wrote, "\\r\\n" read as "\\n"."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("CHARTER_")}
    controller, terminal = pty.openpty()
    try:
        process = subprocess.Popen(
            [CHARTER, *args],
            env={**base, **env, "TERM": "xterm", "COLUMNS": "100"},
            stdin=terminal,
            stdout=terminal,
            stderr=terminal,
            close_fds=True,
        )
    finally:
        os.close(terminal)
    written = b""
    try:
        while True:
            ready, _, _ = select.select([controller], [], [], 120)
            if not ready:
                process.kill()
                pytest.fail(f"charter {' '.join(args)} wrote nothing for 120 s")
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: the command ended and closed the terminal
                break
            if not chunk:
                break
            written += chunk
    finally:
        os.close(controller)
    return process.wait(timeout=60), written.decode().replace("\r\n", "\n")


def key_store(env: dict[str, str]) -> SqlKeyStore:
    home = Path(env["CHARTER_HOME"])
    master = decode_key((home / "secrets" / "master.key").read_text(encoding="ascii"))
    return SqlKeyStore(make_engine(f"sqlite:///{home / 'keys.db'}"), master)


def make_data_keys(env: dict[str, str]) -> bytes:
    """Give PEOPLE people a data key; returns a value sealed under the first one's."""
    store = key_store(env)
    try:
        sealers = store.sealers([f"p-{n:05d}" for n in range(PEOPLE)], create=True)
        return sealers["p-00000"].seal(b"kept", b"test")
    finally:
        store.engine.dispose()


def opens(env: dict[str, str], sealed: bytes) -> bytes | None:
    """What `sealed` opens to with the home's master key now; None if the key store refuses."""
    store = key_store(env)
    try:
        sealer = store.sealer("p-00000")
        return sealer.open(sealed, b"test") if sealer is not None else None
    finally:
        store.engine.dispose()


def append(db: Database, count: int) -> None:
    clock = FixedClock(dt.datetime(2026, 11, 25, 9, 0, tzinfo=dt.UTC))
    with db.writing() as session:
        record_many(
            session, clock, [Event("test", "test:thing:done", f"thing:{n}") for n in range(count)]
        )


# --- the features' callbacks -------------------------------------------------------------------


def test_verify_reports_its_progress_batch_by_batch(db: Database) -> None:
    append(db, 10)
    seen: list[tuple[int, int]] = []

    with db.reading() as session:
        result = verify_chain(
            session, batch=3, progress=lambda done, total: seen.append((done, total))
        )

    assert result.ok
    assert seen == [(3, 10), (6, 10), (9, 10), (10, 10)]


def test_the_rewrap_reports_its_progress_up_to_every_key(
    database_url_factory: Callable[[], str],
) -> None:
    old, new = new_key(), new_key()
    store = SqlKeyStore(make_engine(database_url_factory()), old)
    seen: list[tuple[int, int]] = []
    try:
        people = [f"p-{n:05d}" for n in range(PEOPLE)]
        sealed = store.sealers(people[:1], create=True)["p-00000"].seal(b"kept", b"test")
        store.sealers(people[1:], create=True)

        count = store.rewrap(new, lambda done, total: seen.append((done, total)))

        assert count == PEOPLE
        (total,) = {total for _, total in seen}
        assert total >= PEOPLE  # the store's own rows (its check row) are walked too
        assert [done for done, _ in seen] == sorted({done for done, _ in seen})
        assert len(seen) >= 3
        assert seen[-1] == (total, total)
        reopened = SqlKeyStore(store.engine, new)
        sealer = reopened.sealer("p-00000")
        assert sealer is not None
        assert sealer.open(sealed, b"test") == b"kept"
    finally:
        store.engine.dispose()


# --- the CLI, off a terminal -------------------------------------------------------------------


def test_rotate_master_in_json_is_json_alone_and_rewraps_every_key(home: dict[str, str]) -> None:
    sealed = make_data_keys(home)

    done = cli(home, "keys", "rotate-master", "--json")

    assert done.exit_code == 0, done.stderr
    assert json.loads(done.stdout)["keys_rewrapped"] == PEOPLE
    assert done.stderr == ""
    assert opens(home, sealed) == b"kept"  # under the new key file


def test_verify_in_json_is_json_alone(home: dict[str, str], db: Database) -> None:
    append(db, 40)

    done = cli(home, "audit", "verify", "--json")

    assert done.exit_code == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["ok"] is True
    assert result["entries"] == 41  # and `charter init`'s entry
    assert done.stderr == ""


# --- the CLI, on a terminal --------------------------------------------------------------------


@pytest.mark.slow
def test_on_a_terminal_verify_draws_a_bar_but_not_under_json(
    home: dict[str, str], db: Database
) -> None:
    append(db, 40)

    code, shown = on_terminal(home, "audit", "verify")
    json_code, printed = on_terminal(home, "audit", "verify", "--json")

    assert code == 0
    assert "Verifying the audit chain" in shown
    assert "41/41" in shown
    assert "Audit chain intact: 41 entries" in shown
    assert json_code == 0
    assert json.loads(printed)["entries"] == 41  # nothing but the JSON, though on a terminal


@pytest.mark.slow
def test_on_a_terminal_rotate_master_draws_a_bar_but_not_under_json(
    home: dict[str, str],
) -> None:
    sealed = make_data_keys(home)

    code, shown = on_terminal(home, "keys", "rotate-master")
    json_code, printed = on_terminal(home, "keys", "rotate-master", "--json")

    assert code == 0
    assert "Re-wrapping data keys" in shown
    assert f"Re-wrapped {PEOPLE} data keys" in shown
    assert json_code == 0
    assert json.loads(printed)["keys_rewrapped"] == PEOPLE
    assert opens(home, sealed) == b"kept"
