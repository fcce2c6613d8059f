"""Storage: the models and the migrations agree; a database that is down, unusable or someone
else's stops `charter init` with one line that hides the password; `charter init` run again
reuses what is there; start-up and staff changes are audited without secrets."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from typer.testing import CliRunner, Result

from charter import migrations
from charter.audit.chain import verify_chain
from charter.boot import create_master_key, open_database, open_keystore
from charter.cli.main import build_app
from charter.db import Database, make_engine
from charter.settings import Settings, SettingsError
from charter.tables import metadata
from tests.serving import CHARTER


def charter(home: Path, database_url: str, *args: str, keystore_url: str | None = None) -> Result:
    """Run the `charter` CLI in this process, as a user would type it."""
    env = {"CHARTER_HOME": str(home), "CHARTER_DATABASE_URL": database_url}
    if keystore_url is not None:
        env["CHARTER_KEYSTORE_URL"] = keystore_url
    return CliRunner().invoke(build_app(), list(args), env=env)


def audit_rows(db: Database) -> list[dict[str, str]]:
    with db.reading() as session:
        rows = session.execute(sa.text("SELECT * FROM audit_entries ORDER BY seq")).all()
    return [{key: str(value) for key, value in row._mapping.items()} for row in rows]


# --- Models and migrations ---------------------------------------------------------------------


def test_models_and_migrations_agree(migrated_engine: sa.Engine) -> None:
    with migrated_engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, metadata)
    assert differences == []


def test_a_migrated_database_is_at_the_newest_revision(migrated_engine: sa.Engine) -> None:
    # HEAD, which lets a server start without loading Alembic, names Alembic's own head.
    assert migrations.head_revision(migrated_engine) == migrations.HEAD
    assert migrations.current_revision(migrated_engine) == migrations.HEAD
    assert migrations.upgrade(migrated_engine) is False


def test_a_server_starting_on_a_migrated_database_never_loads_alembic(
    migrated_url: str,
) -> None:
    script = (
        "import sys; from charter import migrations; from charter.db import make_engine; "
        f"assert migrations.upgrade(make_engine({migrated_url!r})) is False; "
        "print(sorted(name for name in sys.modules if name.split('.')[0] == 'alembic'))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout

    assert loaded.strip() == "[]"


def test_an_upgrade_that_fails_part_way_leaves_the_schema_where_it_was(
    database_url_factory: Callable[[], str],
) -> None:
    url = database_url_factory()
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            # Migration 0003 makes this table; the two before it succeed.
            connection.execute(sa.text("CREATE TABLE procedures (id INTEGER)"))

        with pytest.raises(migrations.MigrationFailed, match="procedures"):
            migrations.upgrade(engine)

        assert migrations.current_revision(engine) is None
        assert sa.inspect(engine).get_table_names() == ["procedures"]
    finally:
        engine.dispose()


# --- A database that cannot be used ------------------------------------------------------------

PASSWORD = "s3cret"


@pytest.mark.slow
def test_init_with_the_database_down_prints_one_line_without_the_password(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "CHARTER_HOME": str(tmp_path / "home"),
        "CHARTER_DATABASE_URL": f"postgresql+psycopg://charter:{PASSWORD}@127.0.0.1:1/nowhere",
    }
    result = subprocess.run(
        [CHARTER, "init"], env=env, capture_output=True, text=True, timeout=60, check=False
    )

    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("charter: ")
    assert "127.0.0.1:1" in result.stderr
    assert PASSWORD not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def unusable_urls(tmp_path: Path) -> dict[str, tuple[str, str]]:
    """name -> (CHARTER_DATABASE_URL, what the one-line message must contain)."""
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    not_a_database = tmp_path / "not-a-database.db"
    not_a_database.write_bytes(b"this file holds something else entirely " * 50)
    return {
        "postgres refuses": (
            f"postgresql+psycopg://charter:{PASSWORD}@127.0.0.1:1/nowhere",
            "127.0.0.1:1/nowhere",
        ),
        "postgres bad option": (
            f"postgresql+psycopg://charter:{PASSWORD}@127.0.0.1:1/nowhere?foo=bar",
            "127.0.0.1:1/nowhere",
        ),
        "sqlite under a file": (f"sqlite:///{a_file}/charter.db", str(a_file)),
        "sqlite on a folder": (f"sqlite:///{tmp_path}", str(tmp_path)),
        "sqlite on another file": (f"sqlite:///{not_a_database}", str(not_a_database)),
        "garbage": ("garbage", "garbage"),
        "unknown dialect": (f"foo://charter:{PASSWORD}@host/db", "foo://charter:***@host/db"),
        "driver not installed": (f"mysql://charter:{PASSWORD}@127.0.0.1/db", "mysql://"),
        "bad port": (f"postgresql+psycopg://charter:{PASSWORD}@[::1:5432/db", "[::1:5432/db"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "postgres refuses",
        "postgres bad option",
        "sqlite under a file",
        "sqlite on a folder",
        "sqlite on another file",
        "garbage",
        "unknown dialect",
        "driver not installed",
        "bad port",
    ],
)
def test_init_with_an_unusable_database_says_why_in_one_line(tmp_path: Path, case: str) -> None:
    url, named = unusable_urls(tmp_path)[case]

    result = charter(tmp_path / "home", url, "init")

    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("charter: ")
    assert named in result.stderr
    assert PASSWORD not in result.output


def test_init_on_a_database_holding_other_tables_says_why_in_one_line(
    tmp_path: Path, database_url_factory: Callable[[], str]
) -> None:
    url = database_url_factory()
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE audit_entries (something_else INTEGER)"))
    engine.dispose()

    result = charter(tmp_path / "home", url, "init")

    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.stderr.count("\n") == 1, result.stderr
    assert "audit_entries" in result.stderr


@pytest.mark.parametrize(
    ("keystore_url", "named"),
    [
        (f"postgresql+psycopg://keys:{PASSWORD}@127.0.0.1:1/keys", "127.0.0.1:1/keys"),
        ("garbage", "garbage"),
    ],
)
def test_init_with_an_unusable_key_store_says_why_in_one_line(
    tmp_path: Path, keystore_url: str, named: str
) -> None:
    database = f"sqlite:///{tmp_path / 'charter.db'}"

    result = charter(tmp_path / "home", database, "init", keystore_url=keystore_url)

    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.stderr.count("\n") == 1, result.stderr
    assert "key store" in result.stderr
    assert named in result.stderr
    assert PASSWORD not in result.output


def test_init_on_a_read_only_database_says_why_in_one_line(tmp_path: Path) -> None:
    home, path = tmp_path / "home", tmp_path / "charter.db"
    assert charter(home, f"sqlite:///{path}", "init").exit_code == 0

    result = charter(home, f"sqlite:///file:{path}?mode=ro&uri=true", "init")

    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.stderr.count("\n") == 1, result.stderr
    assert "readonly" in result.stderr


# --- charter init, twice; what start-up and staff changes leave in the audit log -----------------


def test_init_twice_reuses_the_policy_and_the_database(
    tmp_path: Path, committed_db: Database
) -> None:
    home, url = tmp_path / "home", committed_db.url  # type: ignore[attr-defined]

    first = charter(home, url, "init")
    assert first.exit_code == 0, first.output
    assert "copied the OMNI policy" in first.output
    policy_file = home / "policy" / "omni.yaml"
    policy_file.write_text(policy_file.read_text() + "\n# kept by the operator\n")
    assert charter(home, url, "staff", "add", "alice", "--role", "privacy_officer").exit_code == 0

    second = charter(home, url, "init")

    assert second.exit_code == 0, second.output
    assert "copied" not in second.output
    assert "created" not in second.output
    assert policy_file.read_text().endswith("# kept by the operator\n")
    assert migrations.upgrade(committed_db.engine) is False
    with committed_db.reading() as session:
        assert session.execute(sa.text("SELECT COUNT(*) FROM alembic_version")).scalar() == 1
        assert session.execute(sa.text("SELECT name FROM staff")).scalars().all() == ["alice"]
        assert verify_chain(session).ok
    loads = [row for row in audit_rows(committed_db) if row["action"] == "policy:version:loaded"]
    assert len(loads) == 2


@pytest.mark.clause("C3")
def test_init_audits_the_policy_it_loaded(tmp_path: Path, committed_db: Database) -> None:
    home = tmp_path / "home"

    result = charter(home, committed_db.url, "init")  # type: ignore[attr-defined]

    assert result.exit_code == 0, result.output
    (loaded,) = audit_rows(committed_db)
    assert loaded["action"] == "policy:version:loaded"
    assert loaded["actor"].startswith("process:")
    assert loaded["target"].startswith("policy:")
    digest = hashlib.sha256((home / "policy" / "omni.yaml").read_bytes()).hexdigest()
    assert json.loads(loaded["details"]) == {"sha256": digest}


@pytest.mark.clause("C3")
def test_staff_and_key_changes_are_audited_without_secrets(
    tmp_path: Path, committed_db: Database
) -> None:
    home, url = tmp_path / "home", committed_db.url  # type: ignore[attr-defined]
    assert charter(home, url, "init").exit_code == 0

    assert charter(home, url, "staff", "add", "bob", "--role", "billing").exit_code == 0
    created = charter(home, url, "keys", "create", "--staff", "bob", "--json")
    assert created.exit_code == 0, created.output
    issued = json.loads(created.stdout)
    assert charter(home, url, "keys", "revoke", issued["key_id"]).exit_code == 0
    assert charter(home, url, "staff", "disable", "bob").exit_code == 0

    rows = audit_rows(committed_db)
    assert [row["action"] for row in rows] == [
        "policy:version:loaded",
        "staff:member:added",
        "staff:key:created",
        "staff:key:revoked",
        "staff:member:disabled",
    ]
    assert all(row["actor"].startswith(("process:", "cli:")) for row in rows)
    secret = issued["key"].split("_", 2)[2]  # chk_<key id>_<secret>
    master_key = (home / "secrets" / "master.key").read_text().strip()
    everything = json.dumps(rows)
    assert issued["key_id"] in everything
    assert secret not in everything
    assert master_key not in everything


@pytest.mark.parametrize(("given", "pragma"), [(None, 1), ("normal", 1), ("FULL", 2)])
def test_sqlite_commits_are_synced_as_charter_sqlite_synchronous_says(
    tmp_path: Path, given: str | None, pragma: int
) -> None:
    """NORMAL (1) keeps acknowledged writes through a killed process; FULL (2) through a
    power cut too. Both the data and the key store follow the setting."""
    env = {"CHARTER_HOME": str(tmp_path)}
    if given is not None:
        env["CHARTER_SQLITE_SYNCHRONOUS"] = given
    settings = Settings.from_env(env)
    db = open_database(settings)
    create_master_key(settings)
    keys = open_keystore(settings).engine
    try:
        for engine in (db.engine, keys):
            with engine.connect() as connection:
                assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == pragma
    finally:
        db.dispose()
        keys.dispose()


def test_an_unknown_sqlite_synchronous_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(
        SettingsError, match="CHARTER_SQLITE_SYNCHRONOUS must be one of normal, full"
    ):
        Settings.from_env({"CHARTER_HOME": str(tmp_path), "CHARTER_SQLITE_SYNCHRONOUS": "off"})


# --- Connections ---------------------------------------------------------------------------


@pytest.mark.parametrize("pool_size", [None, "12"])
def test_a_steady_load_reuses_the_pool_instead_of_opening_a_connection_per_unit(
    tmp_path: Path, migrated_url: str, pool_size: str | None
) -> None:
    """Twelve units of work at a time, 20 rounds: the database sees at most twelve
    connections opened, not one per unit past the first five (SQLAlchemy's default pool),
    which on PostgreSQL would start a backend process per request."""
    env = {"CHARTER_HOME": str(tmp_path), "CHARTER_DATABASE_URL": migrated_url}
    if pool_size is not None:
        env["CHARTER_DATABASE_POOL_SIZE"] = pool_size
    db = open_database(Settings.from_env(env))
    opened: list[object] = []
    sa.event.listen(db.engine, "connect", lambda connection, _record: opened.append(connection))
    together = threading.Barrier(12)

    def unit() -> None:
        for _ in range(20):
            together.wait()
            with db.reading() as session:
                session.execute(sa.text("SELECT 1"))

    try:
        threads = [threading.Thread(target=unit) for _ in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        db.dispose()

    assert len(opened) <= 12


def test_a_pool_size_out_of_range_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="CHARTER_DATABASE_POOL_SIZE must be between 1 and"):
        Settings.from_env({"CHARTER_HOME": str(tmp_path), "CHARTER_DATABASE_POOL_SIZE": "0"})
