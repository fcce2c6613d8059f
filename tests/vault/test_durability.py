"""Nothing acknowledged is lost (C3): killing the server with SIGKILL during a stream of
`/v1/events` batches loses none of the batches it acknowledged."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from charter.db import Database
from tests.serving import Server, charter, service_key

BATCH = 200
ACKNOWLEDGED_BEFORE_KILL = 10
IP = "198.51.100.{}"


def batch(number: int, person: str) -> dict[str, Any]:
    """Batch `number`, the same every time it is made (so that a retry is the same batch)."""
    events: list[dict[str, Any]] = [
        {
            "type": "page_view",
            "time": f"2026-11-25T10:{number // 60 % 60:02d}:{number % 60:02d}Z",
            "visitor_id": f"visitor-{(number * BATCH + n) % 500:04d}",
            "ip": IP.format(n % 250),
            "path": f"/page/{n}",
        }
        for n in range(BATCH - 1)
    ]
    events.append(
        {"type": "click", "time": "2026-11-25T11:00:00Z", "person_id": person, "ip": IP.format(1)}
    )
    return {"idempotency_key": f"sigkill-batch-{number:05d}", "events": events}


class Stream:
    """Posts batches one after another from a thread until the server stops answering."""

    def __init__(self, base: str, service: dict[str, str], person: str) -> None:
        self.base, self.service, self.person = base, service, person
        self.sent: list[int] = []
        self.acknowledged: list[str] = []
        self.refused: list[str] = []
        self.enough = threading.Event()
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        with httpx.Client(base_url=self.base, headers=self.service, timeout=60) as client:
            for number in range(100_000):
                self.sent.append(number)
                try:
                    response = client.post("/v1/events", json=batch(number, self.person))
                except httpx.TransportError:
                    break
                if response.status_code != 200:
                    self.refused.append(response.text)
                    break
                self.acknowledged.append(response.json()["idempotency_key"])
                if len(self.acknowledged) >= ACKNOWLEDGED_BEFORE_KILL:
                    self.enough.set()
        self.enough.set()


def stored_batches(db: Database) -> tuple[dict[str, int], int]:
    with db.reading() as session:
        batches = session.execute(text("SELECT key, count FROM event_batches")).all()
        events = session.execute(text("SELECT COUNT(*) FROM events")).scalar_one()
    return {str(k): int(v) for k, v in batches}, int(events)


@pytest.mark.clause("C3")
@pytest.mark.slow
def test_sigkill_during_a_stream_of_batches_loses_no_acknowledged_batch(
    environment: dict[str, str], server: Callable[[], Server], committed_db: Database
) -> None:
    charter(environment, "init")
    service = service_key(environment)
    first = server()
    signed = httpx.post(
        f"{first.base}/v1/collect",
        headers=service,
        json={
            "collection_point": "sign_up",
            "fields": {"name": "Zebulon Testperson", "email": "zebulon@example.com"},
        },
    )
    assert signed.status_code == 201, signed.text
    person = signed.json()["person_id"]
    stream = Stream(first.base, service, person)

    stream.thread.start()
    stream.enough.wait(timeout=300)
    first.kill()  # SIGKILL, while the stream is still posting
    stream.thread.join(timeout=300)

    assert stream.refused == []
    assert len(stream.acknowledged) >= ACKNOWLEDGED_BEFORE_KILL
    assert len(stream.sent) > len(stream.acknowledged)  # the kill cut a batch short
    batches, events = stored_batches(committed_db)
    assert set(stream.acknowledged) <= set(batches)
    assert all(batches[k] == BATCH for k in stream.acknowledged)
    # A batch and its events commit together: every stored batch has all its events, and
    # there are no events of a batch that was not stored.
    assert events == sum(batches.values())

    # Restarted, the server resumes: a batch whose answer was lost is stored once on retry,
    # and what was stored before the kill still decrypts.
    second = server()
    with httpx.Client(base_url=second.base, headers=service, timeout=60) as client:
        for number in stream.sent[len(stream.acknowledged) :]:
            retried = client.post("/v1/events", json=batch(number, person))
            assert retried.status_code == 200, retried.text
        used = client.post(
            f"/v1/people/{person}/use",
            headers=service,
            json={"purpose": "registration_authentication", "categories": ["network.ip"]},
        )
    assert used.status_code == 200, used.text
    batches, events = stored_batches(committed_db)
    assert len(batches) == len(stream.sent)
    assert events == BATCH * len(stream.sent)
    assert [v["value"] for v in used.json()["values"]] == [IP.format(1)] * len(stream.sent)


@pytest.mark.slow
def test_more_concurrent_writers_than_worker_threads_all_get_their_answer(
    environment: dict[str, str], server: Callable[[], Server]
) -> None:
    """Writers wait for the database's write lock inside the thread that runs them; if the
    lock were held across the thread pool's hand-offs, more waiting writers than pool
    threads (40) would leave the lock holder no thread to finish on, and all would hang."""
    charter(environment, "init")
    headers = service_key(environment)
    running = server()
    with httpx.Client(base_url=running.base, headers=headers, timeout=30) as client:
        signed = client.post(
            "/v1/collect",
            json={
                "collection_point": "sign_up",
                "person": {"visitor_id": "visitor-many-writers"},
                "fields": {"name": "Quentin Example", "email": "quentin@example.com"},
            },
        )
        assert signed.status_code == 201, signed.text
        person = signed.json()["person_id"]

    def write(number: int) -> int:
        with httpx.Client(base_url=running.base, headers=headers, timeout=60) as client:
            response = client.put(
                f"/v1/people/{person}/choices",
                json={
                    "choices": {
                        "purpose:promotional" if number % 2 else "cookie:performance": False
                    }
                },
            )
            return response.status_code

    with ThreadPoolExecutor(max_workers=80) as pool:
        statuses = list(pool.map(write, range(240)))
    assert statuses == [200] * 240
