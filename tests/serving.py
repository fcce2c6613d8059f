"""`charter serve` as its own process, for the tests that run the real server: its
environment on the test session's databases, starting, stopping and killing it."""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from charter.db import Database

CHARTER = str(Path(sys.executable).with_name("charter"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def charter(env: dict[str, str], *args: str) -> str:
    """Run a `charter` command to completion; its output (the test fails if it fails)."""
    done = subprocess.run(
        [CHARTER, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def service_key(env: dict[str, str], name: str = "web-backend") -> dict[str, str]:
    """Headers with a new key of a new service_client staff member."""
    charter(env, "staff", "add", name, "--role", "service_client")
    key = json.loads(charter(env, "keys", "create", "--staff", name, "--json"))
    return {"Authorization": f"Bearer {key['key']}"}


class Server:
    """`charter serve` as its own process, logging to a file."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        certificate = env.get("CHARTER_TLS_CERT")
        scheme = "https" if certificate else "http"
        self.base = f"{scheme}://127.0.0.1:{env['CHARTER_PORT']}"
        # Over HTTPS, the server's own (self-signed) certificate is the one trusted.
        self.verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=certificate) if certificate else True
        )
        self._log = log.open("ab")
        self.process = subprocess.Popen(
            [CHARTER, "serve"], env=env, stdout=self._log, stderr=subprocess.STDOUT
        )
        self.log = log

    def wait_until_ready(self) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"the server stopped: {self.log.read_text()}")
            try:
                answer = httpx.get(f"{self.base}/healthz", timeout=2, verify=self.verify)
                if answer.status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)  # polling for start-up, not measuring it
        pytest.fail(f"the server did not answer: {self.log.read_text()}")

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, as a service manager stops it; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def close(self) -> None:
        self.kill()
        self._log.close()


@pytest.fixture
def environment(
    committed_db: Database, database_url_factory: Callable[[], str], tmp_path: Path
) -> dict[str, str]:
    """CHARTER_* settings for a server on the session's (committed) database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHARTER_")}
    env.update(
        CHARTER_HOME=str(tmp_path / "home"),
        CHARTER_DATABASE_URL=committed_db.url,  # type: ignore[attr-defined]  # set by the fixture
        CHARTER_KEYSTORE_URL=database_url_factory(),
        CHARTER_HOST="127.0.0.1",
        CHARTER_PORT=str(free_port()),
    )
    return env


@pytest.fixture
def server(environment: dict[str, str], tmp_path: Path) -> Iterator[Callable[[], Server]]:
    """Starts servers on the environment; every one started is killed at the end."""
    started: list[Server] = []

    def start() -> Server:
        started.append(Server(environment, tmp_path / "server.log"))
        started[-1].wait_until_ready()
        return started[-1]

    yield start
    for each in started:
        each.close()
