"""`make audit` (tools/dependency_audit.py): a known vulnerability in a pin fails it, an
advisory database out of reach is reported as skipped and passes, anything else that goes
wrong fails it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.serving import free_port

ROOT = Path(__file__).resolve().parents[1]
AUDIT = ROOT / "tools" / "dependency_audit.py"
# Jinja2 2.10 has published advisories (sandbox escapes fixed in 2.10.1 and later).
VULNERABLE = "jinja2==2.10\n"


def audit(
    requirements: Path, tmp_path: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    # A cache of its own: an answer cached by an earlier run must not stand in for the network.
    return subprocess.run(
        [sys.executable, str(AUDIT), str(requirements), "--cache-dir", str(tmp_path / "cache")],
        env=env or dict(os.environ),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.slow
def test_an_advisory_database_out_of_reach_is_skipped_and_passes(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(VULNERABLE, encoding="utf-8")
    # Every request goes to a proxy on a port nobody listens on: as good as offline.
    nowhere = f"http://127.0.0.1:{free_port()}"
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env.update(HTTPS_PROXY=nowhere, HTTP_PROXY=nowhere)

    done = audit(requirements, tmp_path, env)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "skipped: the advisory database could not be reached" in done.stdout


@pytest.mark.slow
def test_a_pin_with_a_known_vulnerability_fails(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(VULNERABLE, encoding="utf-8")

    done = audit(requirements, tmp_path)

    if "skipped" in done.stdout:
        pytest.skip(f"no advisory database from this machine: {done.stdout.strip()}")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "jinja2 2.10: " in done.stdout


@pytest.mark.slow
def test_a_requirements_file_that_is_not_pins_fails(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("this is not == a pin\n", encoding="utf-8")

    done = audit(requirements, tmp_path)

    assert done.returncode != 0
    assert "skipped" not in done.stdout
    assert "invalid" in done.stderr
