"""No false "all clear": a command run where no Charter data folder exists says so and
stops (exit 2), instead of making an empty database and reporting on it as Charter's."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import typer.main

from charter.cli.main import build_app
from tests.serving import CHARTER

# Commands that read or write Charter's state; what each needs on its command line. The
# commands of `charter policy` read the files they are given and nothing of the data folder.
ARGUMENTS = {
    "charter serve": [],
    "charter staff add": ["sam", "--role", "billing"],
    "charter staff list": [],
    "charter staff disable": ["sam"],
    "charter staff enable": ["sam"],
    "charter keys create": ["--staff", "sam"],
    "charter keys list": [],
    "charter keys revoke": ["AAAAAAAAAAAA"],
    "charter keys rotate-master": [],
    "charter people resume-erasures": [],
    "charter audit log": [],
    "charter audit verify": [],
    "charter audit checkpoint": [],
    "charter mail outbox": [],
    "charter mail send": [],
    "charter disclosures list": [],
    "charter disclosures export": [],
    "charter transfers business": ["--people", "-", "--as", "olivia"],
    "charter requests ingest-mail": ["--maildir", "Maildir"],
    "charter requests due": [],
}


def _commands(command: Any, prefix: str) -> set[str]:
    children = getattr(command, "commands", None)
    if not children:
        return {prefix}
    found: set[str] = set()
    for name, child in children.items():
        found |= _commands(child, f"{prefix} {name}")
    return found


def run(home: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHARTER_")}
    env.update(CHARTER_HOME=str(home), **extra)
    return subprocess.run(
        [CHARTER, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_every_state_command_is_tried_here() -> None:
    every = _commands(typer.main.get_command(build_app()), "charter")
    state = {c for c in every if c != "charter init" and not c.startswith("charter policy ")}

    assert state == set(ARGUMENTS)


@pytest.mark.slow
@pytest.mark.parametrize("command", sorted(ARGUMENTS))
def test_a_command_without_a_data_folder_refuses_and_creates_nothing(
    tmp_path: Path, command: str
) -> None:
    home = tmp_path / "nowhere"

    done = run(home, *command.split()[1:], *ARGUMENTS[command])

    assert done.returncode == 2, done.stderr
    assert done.stderr == (
        f"charter: no Charter data folder at {home}: run 'charter init' or set CHARTER_HOME\n"
    )
    assert not home.exists()


@pytest.mark.slow
def test_init_with_a_bad_master_key_fails_before_it_creates_anything(tmp_path: Path) -> None:
    home = tmp_path / "home"

    done = run(home, "init", CHARTER_MASTER_KEY="not-a-key")

    assert done.returncode == 1
    assert "CHARTER_MASTER_KEY is unusable" in done.stderr
    assert not home.exists()


@pytest.mark.slow
def test_init_makes_the_folder_and_its_files_for_their_owner_only(tmp_path: Path) -> None:
    home = tmp_path / "home"

    done = run(home, "init")

    assert done.returncode == 0, done.stderr
    assert home.stat().st_mode & 0o777 == 0o700
    assert (home / "secrets").stat().st_mode & 0o777 == 0o700
    for name in ("charter.db", "keys.db", "secrets/master.key"):
        assert (home / name).stat().st_mode & 0o777 == 0o600, name
    # The master key is apart from the databases, so a backup of the data can leave it out.
    assert not (home / "master.key").exists()
    assert run(home, "audit", "verify").returncode == 0


@pytest.mark.slow
def test_a_key_file_kept_beside_the_data_is_moved_to_its_own_folder(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert run(home, "init").returncode == 0
    key = (home / "secrets" / "master.key").read_text()
    (home / "secrets" / "master.key").replace(home / "master.key")  # as an older Charter kept it

    done = run(home, "init")

    assert done.returncode == 0, done.stderr
    assert "moved the master key" in done.stdout
    assert (home / "secrets" / "master.key").read_text() == key
    assert not (home / "master.key").exists()


@pytest.mark.slow
def test_the_key_file_can_live_where_a_setting_says(tmp_path: Path) -> None:
    home, elsewhere = tmp_path / "home", tmp_path / "vault" / "charter.key"

    done = run(home, "init", CHARTER_MASTER_KEY_FILE=str(elsewhere))

    assert done.returncode == 0, done.stderr
    assert elsewhere.stat().st_mode & 0o777 == 0o600
    assert not (home / "secrets").exists()
    verified = run(home, "audit", "verify", CHARTER_MASTER_KEY_FILE=str(elsewhere))
    assert verified.returncode == 0
