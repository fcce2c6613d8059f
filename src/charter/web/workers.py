"""Several serving processes (CHARTER_WORKERS > 1), each accepting on a socket of its own.

`charter serve` binds one listening socket per worker, all on the same address with
SO_REUSEPORT, before it boots or starts any worker; the kernel then hands each new connection
to one of the sockets by a hash of its address. With one shared listening socket (uvicorn's own
`workers=`), whichever process wakes first accepts every connection waiting, and a few busy
keep-alive clients could all land on one process while the other idled. Because the sockets
listen from the start, a connection handed to a worker that is still starting waits in its
socket's queue for a second instead of going to the workers already up.

A worker that dies is restarted on the same socket, so the connections queued there wait
for its successor. A worker that dies as it starts stops the others and the supervisor
fails; SIGINT or SIGTERM stops them all, and workers whose supervisor was killed stop on
their own.
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
# Connections a socket queues while its worker is busy or starting (uvicorn's default).
BACKLOG = 2048


class WorkerFailed(Exception):
    """The workers could not listen, or one could not start; the message says which."""


def listening_socket(host: str, port: int, *, shared: bool = True) -> socket.socket:
    """A socket listening on `host:port`; `shared`, other workers' sockets may listen on it
    too (SO_REUSEPORT). Raises `WorkerFailed` if the address cannot be bound."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if shared:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        raise WorkerFailed(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def serve_worker(descriptor: int, supervisor: int) -> None:  # pragma: no cover - a worker
    """Serve the app on the listening socket the supervisor handed down, with the TLS and
    proxy settings of the environment it inherited."""
    # The web stack is loaded in the worker, not the supervisor.
    import uvicorn  # noqa: PLC0415

    from charter.settings import Settings  # noqa: PLC0415
    from charter.web.server import server_config  # noqa: PLC0415

    threading.Thread(target=_stop_when_orphaned, args=(supervisor,), daemon=True).start()
    sock = socket.socket(fileno=descriptor)
    config = server_config(
        Settings.from_env(), "charter.web.server:app_from_environment", factory=True
    )
    uvicorn.Server(config).run(sockets=[sock])


def _stop_when_orphaned(parent: int) -> None:  # pragma: no cover - runs in the worker process
    """A supervisor killed outright (SIGKILL) cannot stop its workers: they stop themselves,
    finishing the requests they hold, as on SIGTERM. The supervisor's pid comes from the
    command line: read from `os.getppid()` here, it would already be init's had the
    supervisor died while this worker was starting, and the worker would never stop."""
    while os.getppid() == parent:
        time.sleep(CHECK_S)
    os.kill(os.getpid(), signal.SIGTERM)


def listening_sockets(host: str, port: int, count: int) -> list[socket.socket]:
    """`count` sockets listening on `host:port`, one per worker. Raises `WorkerFailed` (and
    closes those already bound) if the address cannot be bound."""
    # Sockets of another server that set SO_REUSEPORT would take ours into their group, and
    # the kernel would share the connections between the two servers: a socket that does
    # not share finds such a server (the port is in use) before ours join.
    listening_socket(host, port, shared=False).close()
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sockets.append(listening_socket(host, port))
    except WorkerFailed:
        for sock in sockets:
            sock.close()
        raise
    return sockets


class Supervisor:
    """Start a worker on each of the listening sockets and keep them running until asked to
    stop. The sockets are the caller's: bound before anything else starts, closed by it."""

    def __init__(self, sockets: list[socket.socket]) -> None:
        self._sockets = sockets
        # Each worker process, the socket it serves, and when it was started.
        self._workers: dict[subprocess.Popen[bytes], tuple[socket.socket, float]] = {}
        self._stopping = False

    def run(self) -> None:
        """Serve until SIGINT or SIGTERM; raise `WorkerFailed` if a worker cannot start."""
        previous = {
            number: signal.signal(number, self._ask_to_stop)
            for number in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            for sock in self._sockets:
                self._start(sock)
            while not self._stopping:
                self._watch()
        finally:
            self._stop_all()
            for number, handler in previous.items():
                signal.signal(number, handler)

    def _ask_to_stop(self, _number: int, _frame: FrameType | None) -> None:
        self._stopping = True

    def _start(self, sock: socket.socket) -> None:
        descriptor = sock.fileno()
        command = [sys.executable, "-m", __name__, str(descriptor), str(os.getpid())]
        process = subprocess.Popen(command, pass_fds=(descriptor,))  # noqa: S603 - our own
        self._workers[process] = (sock, time.monotonic())

    def _watch(self) -> None:
        time.sleep(CHECK_S)
        for process in [p for p in self._workers if p.poll() is not None]:
            sock, started = self._workers.pop(process)
            if self._stopping:
                continue
            if time.monotonic() - started < STARTUP_GRACE_S:
                raise WorkerFailed(
                    f"a worker process exited with code {process.returncode} as it started"
                )
            self._start(sock)

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
    serve_worker(int(sys.argv[1]), int(sys.argv[2]))
