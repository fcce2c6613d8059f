"""The policy from the command line: how long `charter policy validate` takes."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

from bench.harness import Result, Run, benchmark, median
from bench.instance import CHARTER, REPO, clean_env

RUNS = 10


@benchmark("policy.validate_ms")
def validate(run: Run) -> Iterator[Result]:
    """Wall time of `charter policy validate policies/omni.yaml`, interpreter start included."""
    env = clean_env()
    command = [CHARTER, "policy", "validate", "policies/omni.yaml"]
    run.step("warming up (not timed)")
    subprocess.run(command, env=env, cwd=REPO, capture_output=True, check=True)
    samples = []
    for number in range(1, RUNS + 1):
        run.step(f"run {number}/{RUNS}")
        started = time.perf_counter()
        subprocess.run(command, env=env, cwd=REPO, capture_output=True, check=True)
        samples.append((time.perf_counter() - started) * 1000)
    yield Result(
        "policy.validate_ms",
        median(samples),
        "ms",
        higher_is_better=False,
        target=500,
        note=f"median of {RUNS} runs, as a subprocess",
    )
