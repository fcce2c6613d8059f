"""One audit chain under several servers (issue 15): four `charter serve` processes on one
database, each saving choices as fast as its clients can send them, leave one intact chain
with an entry for every save they acknowledged."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from charter.db import Database
from tests.serving import Server, charter, free_port, service_key
from tests.vault.calls import sign_up

pytestmark = pytest.mark.slow

SERVERS = 4
SAVES_PER_SERVER = 60


@pytest.fixture
def servers(environment: dict[str, str], tmp_path: Path) -> Iterator[Callable[[], list[Server]]]:
    started: list[Server] = []

    def start() -> list[Server]:
        for number in range(SERVERS):
            env = {**environment, "CHARTER_PORT": str(free_port())}
            started.append(Server(env, tmp_path / f"server-{number}.log"))
        for each in started:
            each.wait_until_ready()
        return started

    yield start
    for each in started:
        each.close()


@pytest.mark.clause("C3")
def test_four_servers_writing_at_once_keep_one_valid_chain(
    environment: dict[str, str], servers: Callable[[], list[Server]], committed_db: Database
) -> None:
    charter(environment, "init")
    headers = service_key(environment)
    before = json.loads(charter(environment, "audit", "verify", "--json"))["entries"]
    running = servers()
    with httpx.Client(base_url=running[0].base, headers=headers, timeout=30) as client:
        people = [
            sign_up(client, {}, f"visitor-servers-{number}", f"rosa{number}@example.com")
            for number in range(SERVERS)
        ]

    def save(job: tuple[int, int]) -> int:
        server, number = job
        with httpx.Client(base_url=running[server].base, headers=headers, timeout=60) as client:
            topic = "cookie:performance" if number % 2 else "purpose:promotional"
            return client.put(
                f"/v1/people/{people[(server + number) % SERVERS]}/choices",
                json={"choices": {topic: False}},
            ).status_code

    jobs = [(server, number) for number in range(SAVES_PER_SERVER) for server in range(SERVERS)]
    with ThreadPoolExecutor(max_workers=4 * SERVERS) as pool:
        statuses = list(pool.map(save, jobs))

    assert statuses == [200] * len(jobs)
    verified = json.loads(charter(environment, "audit", "verify", "--json"))
    assert verified["ok"] is True, verified
    # Sign-ups and saves each left their entries; none was lost or doubled in the chain.
    assert verified["entries"] >= before + SERVERS + len(jobs)
    with committed_db.reading() as session:
        saves = session.execute(
            text("SELECT count(*) FROM audit_entries WHERE action = 'consent:choices:set'")
        ).scalar_one()
    assert saves == len(jobs)
