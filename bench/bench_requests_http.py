"""Rights requests over HTTP (`POST /v1/requests`) from 10 clients at once, on SQLite, beside
the same server's health endpoint driven by the same clients right after.

The requests alternate between an opt-out of sale or sharing by e-mail (verified at once: it
needs no verification) and a deletion by e-mail (awaiting verification: a single-use link is
signed and its message rendered, sealed and queued in the outbox in the same transaction).
Both find the person by their address through the blind index. The machine's speed drifts by
2x from one minute to the next, so the throughput is also given as a share of the health
endpoint's, measured by the same client code against the same server a moment later.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from bench.client import Api, close, exchange, expect
from bench.harness import Result, Run, benchmark, percentile
from bench.instance import HOST, Instance

# People signed up first, each with an address the requests name.
PEOPLE = 100
CLIENTS = 10
SECONDS = 5.0
# Requests from the same 10 clients before the timed load (not timed).
WARMUP = 100
ANCHOR = "GET /healthz, same server and 10 clients, right after"
# Each request, with the state its answer must show.
MIX = (("opt_out_sale_sharing", "verified"), ("delete", "awaiting_verification"))


@dataclass(frozen=True)
class Request:
    raw: bytes
    # The state the answer must show, or None for the health check (any 200).
    state: str | None
    mails: bool


@dataclass(frozen=True)
class Load:
    answered: int
    mailed: int
    seconds: float
    latencies_ms: list[float]

    @property
    def rps(self) -> float:
        return self.answered / self.seconds


@benchmark("requests.create.rps", "requests.create.p99_ms")
def create(run: Run) -> Iterator[Result]:
    """`charter serve` with one worker on a fresh SQLite home; 10 clients submit requests
    for a few seconds, then ask GET /healthz for as long."""
    run.step("charter init")
    with Instance.temporary() as instance:
        run.step("adding a service client and its key")
        key = instance.staff_key("bench-service", role="service_client")
        run.step("starting the server")
        with instance.serve(workers=1) as served:
            api = Api(served.port, key, HOST)
            run.step(f"signing up {PEOPLE} people (not timed)")
            asyncio.run(_sign_up(api, PEOPLE))
            requests = [
                Request(
                    api.request(
                        "POST",
                        "/v1/requests",
                        json.dumps({"type": kind, "email": _address(number)}).encode(),
                    ),
                    state,
                    mails=state == "awaiting_verification",
                )
                for number in range(PEOPLE)
                for kind, state in MIX
            ]
            run.step(f"{WARMUP} requests from {CLIENTS} clients (not timed)")
            warm = asyncio.run(_load(requests, api, expected=201, count=WARMUP))
            run.step(f"requests, {CLIENTS} clients for {SECONDS:.0f} s")
            load = asyncio.run(_load(requests, api, expected=201, seconds=SECONDS))
            run.step(f"GET /healthz, {CLIENTS} clients for {SECONDS:.0f} s")
            health_request = f"GET /healthz HTTP/1.1\r\nHost: {HOST}:{served.port}\r\n\r\n"
            health = asyncio.run(
                _load(
                    [Request(health_request.encode(), None, mails=False)],
                    api,
                    expected=200,
                    seconds=SECONDS,
                )
            )
        queued = _outbox_size(instance)
    mailed = warm.mailed + load.mailed
    if queued != mailed:
        raise RuntimeError(f"{mailed:,} deletions answered but {queued:,} messages in the outbox")
    note = (
        f"{CLIENTS} keep-alive clients for {load.seconds:.1f} s, {load.answered:,} requests "
        f"answered 201 (after {WARMUP} untimed), alternating an opt-out of sale or sharing by "
        f"e-mail (verified at once) and a deletion by e-mail (its link queued in the outbox: "
        f"{queued:,} messages), cycling over {PEOPLE} people signed up through "
        f"`POST /v1/collect`; `charter serve`, 1 worker, SQLite; the same clients on "
        f"GET /healthz: {health.rps:,.0f} req/s, p99 {percentile(health.latencies_ms, 99):.1f} ms"
    )
    if run.wants("requests.create.rps"):
        yield Result(
            "requests.create.rps",
            load.rps,
            "req/s",
            higher_is_better=True,
            anchor=ANCHOR,
            anchor_value=health.rps,
            target=420,
            note=f"{note}; ratio = requests per second / health answers per second",
        )
    if run.wants("requests.create.p99_ms"):
        yield Result(
            "requests.create.p99_ms",
            percentile(load.latencies_ms, 99),
            "ms",
            higher_is_better=False,
            anchor=f"{ANCHOR}: its p99",
            anchor_value=percentile(health.latencies_ms, 99),
            target=20,
            note=f"{note}; p50 {percentile(load.latencies_ms, 50):.1f} ms",
        )


def _outbox_size(instance: Instance) -> int:
    """How many messages the stopped server's outbox holds, in any state."""
    uri = f"file:{instance.home / 'charter.db'}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as connection:
        return int(connection.execute("SELECT count(*) FROM mail_outbox").fetchone()[0])


def _address(number: int) -> str:
    return f"person-{number}@example.com"


async def _sign_up(api: Api, count: int) -> None:
    """Sign up `count` people through POST /v1/collect, four at a time."""
    numbers = iter(range(count))

    async def worker() -> None:
        reader, writer = await api.connect()
        try:
            for number in numbers:
                body = json.dumps(
                    {
                        "collection_point": "sign_up",
                        "person": {"visitor_id": f"bench-requests-{number}"},
                        "fields": {"name": f"Bench Person {number}", "email": _address(number)},
                    }
                ).encode()
                status, answer = await exchange(
                    reader, writer, api.request("POST", "/v1/collect", body)
                )
                expect(status, answer, 201, "POST /v1/collect")
        finally:
            await close(writer)

    await asyncio.gather(*(worker() for _ in range(4)))


async def _load(
    requests: Sequence[Request],
    api: Api,
    *,
    expected: int,
    count: int | None = None,
    seconds: float | None = None,
) -> Load:
    """Send `requests` in turn from `CLIENTS` keep-alive connections, each waiting for its
    answer before the next, until `count` are answered or `seconds` have passed. Every answer
    must have the `expected` status and, for a rights request, the state it should be in."""
    started = time.perf_counter()
    deadline = started + seconds if seconds is not None else None
    latencies: list[float] = []
    sent = mailed = 0

    async def client() -> None:
        nonlocal sent, mailed
        reader, writer = await api.connect()
        try:
            while True:
                if count is not None and sent >= count:
                    return
                if deadline is not None and time.perf_counter() >= deadline:
                    return
                request = requests[sent % len(requests)]
                sent += 1
                begun = time.perf_counter()
                status, answer = await exchange(reader, writer, request.raw)
                latencies.append((time.perf_counter() - begun) * 1000)
                what = request.raw.split(b" ", 2)[1].decode()
                expect(status, answer, expected, what)
                if request.state is not None:
                    state = json.loads(answer)["state"]
                    if state != request.state:
                        raise RuntimeError(f"{what} answered {state!r}, not {request.state!r}")
                mailed += request.mails
        finally:
            await close(writer)

    await asyncio.gather(*(client() for _ in range(CLIENTS)))
    return Load(len(latencies), mailed, time.perf_counter() - started, latencies)
