"""A throwaway Charter, driven from outside as its users drive it: a temporary CHARTER_HOME
prepared by `charter init`, the `charter` CLI, and `charter serve` on a free local port.

Everything started here is stopped, and every temporary folder removed, when its `with`
block ends, whether the benchmark finished or failed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil

from bench.client import get_status

REPO = Path(__file__).resolve().parents[1]
# The console script installed beside the interpreter that runs the benchmarks.
CHARTER = str(Path(sys.executable).with_name("charter"))
HOST = "127.0.0.1"
# How often to ask /healthz while the server starts: the resolution of `server.start_s`.
POLL_S = 0.005


def clean_env(**settings: str) -> dict[str, str]:
    """The current environment without any CHARTER_* variable, plus `settings`, so that a
    developer's own CHARTER_HOME or CHARTER_DATABASE_URL never leaks into a measurement."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("CHARTER_")}
    env.update(settings)
    return env


def run_charter(*args: str, env: dict[str, str]) -> str:
    """Run one `charter` command to completion; its stdout, or an error naming its stderr."""
    done = subprocess.run(
        [CHARTER, *args], env=env, cwd=REPO, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"charter {' '.join(args)} exited {done.returncode}: "
            f"{done.stderr.strip() or done.stdout.strip()}"
        )
    return done.stdout


# What a serving process imports before it serves anything (the web stack and the CLI that
# starts it; psycopg too, for PostgreSQL).
_SERVER_IMPORTS = "import charter.cli.main, charter.web.server"


def imports_rss_mb(*, postgres: bool = False) -> float:
    """Resident memory of a fresh interpreter that has imported what a server imports and
    done nothing else, in MiB: the floor under a worker's memory."""
    imports = _SERVER_IMPORTS + (", charter.loop_writes, psycopg" if postgres else "")
    script = f"{imports}; import psutil; print(psutil.Process().memory_info().rss)"
    printed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=REPO
    ).stdout
    return int(printed) / (1024 * 1024)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Server:
    """A running `charter serve`: where it answers, its process, and how long it took to
    give its first healthy answer."""

    base_url: str
    port: int
    process: subprocess.Popen[bytes]
    start_s: float

    def rss_mb(self) -> float:
        """Resident memory of the server process and any children, in MiB."""
        root = psutil.Process(self.process.pid)
        total = root.memory_info().rss
        total += sum(child.memory_info().rss for child in root.children(recursive=True))
        return total / (1024 * 1024)

    def worker_rss_mb(self) -> float:
        """Resident memory of the largest process that serves requests, in MiB: the server
        itself when it runs one worker, else the largest of its worker processes."""
        root = psutil.Process(self.process.pid)
        processes = root.children(recursive=True) or [root]
        return max(process.memory_info().rss for process in processes) / (1024 * 1024)


class Instance:
    """A Charter home in a temporary folder, already `charter init`-ed, on SQLite unless
    `settings` name another database (CHARTER_DATABASE_URL)."""

    def __init__(self, home: Path, settings: dict[str, str]) -> None:
        self.home = home
        self.settings = settings

    @classmethod
    @contextlib.contextmanager
    def temporary(cls, **settings: str) -> Iterator[Instance]:
        folder = Path(tempfile.mkdtemp(prefix="charter-bench-"))
        try:
            instance = cls(folder / "home", settings)
            instance.cli("init")
            yield instance
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def env(self, **settings: str) -> dict[str, str]:
        return clean_env(CHARTER_HOME=str(self.home), **{**self.settings, **settings})

    def cli(self, *args: str) -> str:
        return run_charter(*args, env=self.env())

    def staff_key(self, name: str = "bench", role: str = "privacy_officer") -> str:
        """Add a staff member with `role` and return a new API key of theirs."""
        self.cli("staff", "add", name, "--role", role)
        return str(json.loads(self.cli("keys", "create", "--staff", name, "--json"))["key"])

    @contextlib.contextmanager
    def serve(
        self, *, timeout_s: float = 30.0, workers: int = 1, **settings: str
    ) -> Iterator[Server]:
        """Start `charter serve`, wait until GET /healthz answers 200, and stop it afterwards.

        `start_s` runs from just before the process is launched to the first healthy answer,
        so it includes interpreter start, imports, the migrations check and the policy load.
        """
        port = free_port()
        log_path = self.home / f"serve-{port}.log"
        env = self.env(
            CHARTER_HOST=HOST, CHARTER_PORT=str(port), CHARTER_WORKERS=str(workers), **settings
        )
        with log_path.open("wb") as log:
            started = time.perf_counter()
            process = subprocess.Popen(
                [CHARTER, "serve"], env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT
            )
            try:
                while _health(port) != 200:
                    _check_starting(process, log_path, time.perf_counter() - started, timeout_s)
                    time.sleep(POLL_S)
                start_s = time.perf_counter() - started
                yield Server(f"http://{HOST}:{port}", port, process, start_s)
            finally:
                _stop(process)


def _health(port: int) -> int | None:
    try:
        return get_status(HOST, port, "/healthz")
    except OSError:
        return None


def _check_starting(
    process: subprocess.Popen[bytes], log_path: Path, waited_s: float, timeout_s: float
) -> None:
    if process.poll() is not None:
        tail = log_path.read_text(errors="replace").strip()[-2000:]
        raise RuntimeError(f"charter serve exited {process.returncode} before answering:\n{tail}")
    if waited_s > timeout_s:
        raise RuntimeError(f"charter serve did not answer /healthz within {timeout_s:.0f} s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
