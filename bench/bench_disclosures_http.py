"""A disclosure of one person over HTTP (`POST /v1/disclosures`) on SQLite, one client, beside
the same server's health endpoint driven by the same client on the same connection.

The disclosures and the health checks alternate, one of each, so that the machine's drift
from one second to the next (2x on these machines) falls on both alike: the ratio of their
p50s says how much a disclosure costs over what the server and client cost at all.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass

from bench.client import Api, close, exchange, expect
from bench.harness import Result, Run, benchmark, percentile
from bench.instance import HOST, Instance

# People signed up first; the disclosures cycle over them, one person each.
PEOPLE = 100
REQUESTS = 1_000
WARMUP = 50
# A processor on OMNI's instructions, as docs/api.md's example: allowed for every user.
RECIPIENT = {
    "recipient": "cloud_hosting",
    "purpose": "service_support",
    "categories": ["contact.email"],
}
ANCHOR = "GET /healthz, same client, alternating"


@dataclass(frozen=True)
class Latencies:
    disclosures_ms: list[float]
    health_ms: list[float]


@benchmark("disclosures.one.p50_ms", "disclosures.one.p99_ms")
def one(run: Run) -> Iterator[Result]:
    """`charter serve` with one worker on a fresh SQLite home; one client sends a disclosure
    of one person (a fresh idempotency key each), then GET /healthz, and again."""
    run.step("charter init")
    with Instance.temporary() as instance:
        run.step("adding a privacy officer and a key")
        key = instance.staff_key()
        run.step("starting the server")
        with instance.serve() as served:
            api = Api(served.port, key)
            run.step(f"signing up {PEOPLE} people (not timed)")
            people = asyncio.run(_sign_up(api, PEOPLE))
            run.step(f"{REQUESTS:,} disclosures of one person, each followed by GET /healthz")
            measured = asyncio.run(_alternate(api, people))
    note = (
        f"{REQUESTS:,} disclosures of one person (after {WARMUP} untimed), each with a fresh "
        f"idempotency key, cycling over {PEOPLE} people, to {RECIPIENT['recipient']} for "
        f"{RECIPIENT['purpose']}; one keep-alive connection, each followed by GET /healthz; "
        "`charter serve`, 1 worker, SQLite"
    )
    for pct, target in ((50, 3.0), (99, 15.0)):
        name = f"disclosures.one.p{pct}_ms"
        if run.wants(name):
            yield Result(
                name,
                percentile(measured.disclosures_ms, pct),
                "ms",
                higher_is_better=False,
                anchor=f"{ANCHOR}: its p{pct}",
                anchor_value=percentile(measured.health_ms, pct),
                target=target,
                note=note,
            )


async def _sign_up(api: Api, count: int) -> list[str]:
    """Sign up `count` people through POST /v1/collect, one after another; their ids."""
    people: list[str] = []
    reader, writer = await api.connect()
    try:
        for number in range(count):
            body = json.dumps(
                {
                    "collection_point": "sign_up",
                    "person": {"visitor_id": f"bench-disclose-{number}"},
                    "fields": {
                        "name": f"Bench Person {number}",
                        "email": f"bench-disclose{number}@example.com",
                    },
                }
            ).encode()
            request = api.request("POST", "/v1/collect", body)
            status, answer = await exchange(reader, writer, request)
            expect(status, answer, 201, "POST /v1/collect")
            people.append(json.loads(answer)["person_id"])
    finally:
        await close(writer)
    return people


async def _alternate(api: Api, people: list[str]) -> Latencies:
    """On one keep-alive connection: a disclosure of one person, then GET /healthz, each
    waiting for its answer; every disclosure must answer 201 with that person disclosed, and
    every health check 200."""
    health = f"GET /healthz HTTP/1.1\r\nHost: {HOST}:{api.port}\r\n\r\n".encode()
    measured = Latencies([], [])
    reader, writer = await api.connect()
    try:
        for number in range(WARMUP + REQUESTS):
            body = json.dumps(
                {
                    **RECIPIENT,
                    "people": [people[number % len(people)]],
                    "idempotency_key": f"bench-one-{number}",
                }
            ).encode()
            disclosure = api.request("POST", "/v1/disclosures", body)
            begun = time.perf_counter()
            status, answer = await exchange(reader, writer, disclosure)
            disclosed_ms = (time.perf_counter() - begun) * 1000
            expect(status, answer, 201, "POST /v1/disclosures")
            if json.loads(answer)["disclosed"] != 1:
                raise RuntimeError(f"the person was not disclosed: {answer[:300]!r}")
            begun = time.perf_counter()
            status, answer = await exchange(reader, writer, health)
            health_ms = (time.perf_counter() - begun) * 1000
            expect(status, answer, 200, "GET /healthz")
            if number >= WARMUP:
                measured.disclosures_ms.append(disclosed_ms)
                measured.health_ms.append(health_ms)
    finally:
        await close(writer)
    return measured
