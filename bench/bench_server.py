"""Charter as a service: start-up time, throughput of the policy page, latency of an
authenticated API read, and the server's memory once it has done all that."""

from __future__ import annotations

from collections.abc import Iterator

from bench.client import run_load, time_requests
from bench.harness import Result, Run, benchmark, latency_results, median
from bench.instance import HOST, Instance

STARTS = 3
LOAD_CONNECTIONS = 8
LOAD_SECONDS = 5.0
AUTH_REQUESTS = 2000
AUTH_PATH = "/v1/audit?limit=1"
SERVED = ("http.policy_page_rps", "http.auth_get.p50_ms", "http.auth_get.p99_ms", "server.rss_mb")


@benchmark("server.start_s", *SERVED)
def server(run: Run) -> Iterator[Result]:
    """`charter serve` on a fresh, `charter init`-ed home on SQLite, measured from outside."""
    run.step("charter init")
    with Instance.temporary() as instance:
        if run.wants("server.start_s"):
            yield _start_time(run, instance)
        if not run.wants_any(*SERVED):
            return
        run.step("adding a privacy officer and a key")
        key = instance.staff_key()
        run.step("starting the server")
        with instance.serve() as served:
            if run.wants("http.policy_page_rps"):
                run.step(f"GET /policy on {LOAD_CONNECTIONS} connections for {LOAD_SECONDS:.0f} s")
                load = run_load(
                    HOST,
                    served.port,
                    "/policy",
                    connections=LOAD_CONNECTIONS,
                    duration_s=LOAD_SECONDS,
                )
                if load.failures:
                    raise RuntimeError(f"{load.failures} requests to /policy did not answer 200")
                yield Result(
                    "http.policy_page_rps",
                    load.rps,
                    "req/s",
                    higher_is_better=True,
                    note=f"{LOAD_CONNECTIONS} keep-alive connections, {load.requests} "
                    f"requests in {load.seconds:.1f} s",
                )
            if run.wants_any("http.auth_get.p50_ms", "http.auth_get.p99_ms"):
                run.step(f"{AUTH_REQUESTS} x GET {AUTH_PATH}, one at a time")
                latencies = time_requests(
                    HOST,
                    served.port,
                    AUTH_PATH,
                    count=AUTH_REQUESTS,
                    headers={"Authorization": f"Bearer {key}"},
                )
                note = f"{AUTH_REQUESTS} sequential requests on one connection, bearer key"
                yield from latency_results(run, "http.auth_get", latencies, note)
            if run.wants("server.rss_mb"):
                yield Result(
                    "server.rss_mb",
                    served.rss_mb(),
                    "MB",
                    higher_is_better=False,
                    target=120,
                    note="resident memory of `charter serve` after the "
                    "HTTP benchmarks that ran before it",
                )


def _start_time(run: Run, instance: Instance) -> Result:
    samples = []
    for number in range(1, STARTS + 1):
        run.step(f"start {number}/{STARTS}: Popen to first 200 from /healthz")
        with instance.serve() as served:
            samples.append(served.start_s)
    return Result(
        "server.start_s",
        median(samples),
        "s",
        higher_is_better=False,
        target=1.5,
        note=f"median of {STARTS} starts; for context, Fides takes 6.5-11 s to start "
        "on this kind of machine (not measured here)",
    )
