"""Several serving processes (CHARTER_WORKERS > 1), each accepting on its own socket.

Every worker binds the address with SO_REUSEPORT, so the kernel spreads new connections
across the workers. With one shared listening socket (uvicorn's own `workers=`), whichever
process wakes first accepts every connection waiting, and a few busy keep-alive clients
could all land on one process while the other idled.

The supervisor restarts a worker that dies after it has served, and stops the others and
fails if a worker cannot start (the port is taken, say); SIGINT or SIGTERM stops them all,
and workers whose supervisor was killed stop on their own.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from types import FrameType

# A worker that exits sooner than this after it was started never came up: stop, don't loop.
STARTUP_GRACE_S = 10.0
# How often a worker checks that its supervisor still runs, and the supervisor its workers.
CHECK_S = 0.5
# How long stopping workers get to finish the requests they hold before they are killed.
STOP_TIMEOUT_S = 10.0


class WorkerFailed(Exception):
    """A worker process could not start; the message says which exit code it gave."""


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to `host:port` that other workers may bind too (SO_REUSEPORT)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def serve_worker(host: str, port: int) -> None:  # pragma: no cover - the worker process
    import uvicorn  # noqa: PLC0415 - the web stack is loaded in the worker, not the supervisor

    threading.Thread(target=_stop_when_orphaned, args=(os.getppid(),), daemon=True).start()
    try:
        sock = listening_socket(host, port)
    except OSError as exc:
        raise SystemExit(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    config = uvicorn.Config(
        "charter.web.server:app_from_environment",
        factory=True,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
    )
    uvicorn.Server(config).run(sockets=[sock])


def _stop_when_orphaned(parent: int) -> None:  # pragma: no cover - runs in the worker process
    """A supervisor killed outright (SIGKILL) cannot stop its workers: they stop themselves,
    finishing the requests they hold, as on SIGTERM."""
    while os.getppid() == parent:
        time.sleep(CHECK_S)
    os.kill(os.getpid(), signal.SIGTERM)


class Supervisor:
    """Start `count` workers and keep them running until asked to stop."""

    def __init__(self, host: str, port: int, count: int) -> None:
        self._host, self._port, self._count = host, port, count
        self._workers: dict[subprocess.Popen[bytes], float] = {}
        self._stopping = False

    def run(self) -> None:
        """Serve until SIGINT or SIGTERM; raise `WorkerFailed` if a worker cannot start."""
        previous = {
            number: signal.signal(number, self._ask_to_stop)
            for number in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            for _ in range(self._count):
                self._start()
            while not self._stopping:
                self._watch()
        finally:
            self._stop_all()
            for number, handler in previous.items():
                signal.signal(number, handler)

    def _ask_to_stop(self, _number: int, _frame: FrameType | None) -> None:
        self._stopping = True

    def _start(self) -> None:
        command = [sys.executable, "-m", __name__, self._host, str(self._port)]
        self._workers[subprocess.Popen(command)] = time.monotonic()  # noqa: S603 - our own

    def _watch(self) -> None:
        time.sleep(CHECK_S)
        for process in [p for p in self._workers if p.poll() is not None]:
            started = self._workers.pop(process)
            if self._stopping:
                continue
            if time.monotonic() - started < STARTUP_GRACE_S:
                raise WorkerFailed(
                    f"a worker process exited with code {process.returncode} as it started"
                )
            self._start()

    def _stop_all(self) -> None:
        for process in self._workers:
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for process in self._workers:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._workers.clear()


if __name__ == "__main__":  # pragma: no cover - how the supervisor starts each worker
    serve_worker(sys.argv[1], int(sys.argv[2]))
