"""`charter serve` with CHARTER_WORKERS > 1: every worker takes connections, SIGTERM stops
them all, and a supervisor killed outright leaves no worker behind (a port that is taken:
test_serve.py)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import psutil
import pytest

from tests.serving import Server, charter, service_key

WORKERS = 2
CLIENTS = 16


def workers_of(server: Server) -> list[psutil.Process]:
    return psutil.Process(server.process.pid).children()


def connections_to(process: psutil.Process, port: int) -> int:
    return sum(
        1
        for c in process.net_connections(kind="tcp")
        if c.status == psutil.CONN_ESTABLISHED and c.laddr and c.laddr.port == port
    )


def wait_until_gone(processes: list[psutil.Process], timeout: float = 30) -> list[psutil.Process]:
    """The processes still running after `timeout`."""
    _, alive = psutil.wait_procs(processes, timeout=timeout)
    return alive


@pytest.fixture
def serving(
    environment: dict[str, str], server: Callable[[], Server]
) -> tuple[Server, list[psutil.Process]]:
    """`charter serve` with two workers, started; the server and its worker processes."""
    environment["CHARTER_WORKERS"] = str(WORKERS)
    charter(environment, "init")
    running = server()
    workers = workers_of(running)
    assert len(workers) == WORKERS
    return running, workers


@pytest.mark.slow
def test_every_worker_takes_connections_and_sigterm_stops_them_all(
    environment: dict[str, str], serving: tuple[Server, list[psutil.Process]]
) -> None:
    running, workers = serving
    headers = service_key(environment)
    port = int(environment["CHARTER_PORT"])

    clients = [httpx.Client(base_url=running.base, headers=headers) for _ in range(CLIENTS)]
    try:
        for number, client in enumerate(clients):
            answer = client.put(
                "/v1/people/no-such-person/choices",
                json={"choices": {"purpose:promotional": number % 2 == 0}},
            )
            assert answer.status_code == 404, answer.text + running.log.read_text()
        # Sixteen keep-alive connections, spread by the kernel: each worker holds some (the
        # chance that one worker gets all sixteen is 2 in 65,536).
        held = [connections_to(worker, port) for worker in workers]
        assert sum(held) == CLIENTS
        assert all(count > 0 for count in held), held
    finally:
        for client in clients:
            client.close()

    assert running.stop() == 0
    assert wait_until_gone(workers) == []


@pytest.mark.slow
def test_workers_stop_on_their_own_when_their_supervisor_is_killed(
    serving: tuple[Server, list[psutil.Process]],
) -> None:
    running, workers = serving
    running.kill()  # SIGKILL: the supervisor cannot pass anything on

    assert wait_until_gone(workers) == []
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{running.base}/healthz", timeout=2)
