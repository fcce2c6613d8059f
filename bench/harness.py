"""What a benchmark is, how it reports, and how a run is driven.

A benchmark is a generator function in a `bench/bench_<area>.py` module, registered with
`@benchmark(...)` under the dotted names of the results it yields:

    @benchmark("policy.validate_ms")
    def validate(run: Run) -> Iterator[Result]:
        run.step("validating")
        yield Result("policy.validate_ms", 212.0, "ms", higher_is_better=False, target=500)

`python -m bench` imports every `bench_*.py` module, keeps the benchmarks that declare a name
matching `--only`, runs them, prints each result as a JSON line and then as a table, and writes
the lines to `bench/results/latest.jsonl`.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Result:
    """One measured number. `target` and `note` are shown in the table, not written to JSON.

    `anchor` names an alternative measured in the same run; `ratio` is oriented so that a
    value above 1 means Charter is better.
    """

    bench: str
    value: float
    unit: str
    higher_is_better: bool
    anchor: str | None = None
    anchor_value: float | None = None
    target: float | None = None
    note: str | None = None
    # The least `ratio` that holds the figure on a machine whose speed drifts.
    ratio_target: float | None = None

    @property
    def ratio(self) -> float | None:
        if self.anchor_value is None:
            return None
        if self.higher_is_better:
            return self.value / self.anchor_value if self.anchor_value else math.inf
        return self.anchor_value / self.value if self.value else math.inf

    @property
    def meets_target(self) -> bool | None:
        if self.target is None:
            return None
        return self.value >= self.target if self.higher_is_better else self.value <= self.target

    @property
    def meets_ratio_target(self) -> bool | None:
        if self.ratio_target is None or self.ratio is None:
            return None
        return self.ratio >= self.ratio_target

    def as_json(self) -> dict[str, Any]:
        line: dict[str, Any] = {
            "bench": self.bench,
            "value": round(self.value, 4),
            "unit": self.unit,
            "higher_is_better": self.higher_is_better,
        }
        if self.anchor is not None:
            ratio = self.ratio
            line.update(
                anchor=self.anchor,
                anchor_value=round(self.anchor_value or 0.0, 4),
                ratio=round(ratio, 4) if ratio is not None else None,
            )
        return line


class Run:
    """What a running benchmark may ask of the harness: which results are wanted, and a
    place to say what it is doing now."""

    def __init__(
        self,
        prefixes: Sequence[str],
        on_step: Callable[[str], None],
        on_notice: Callable[[str], None],
    ) -> None:
        self._prefixes = tuple(prefixes)
        self._on_step = on_step
        self._on_notice = on_notice

    def wants(self, name: str) -> bool:
        """Whether the result `name` was asked for (all are, without `--only`)."""
        return matches(name, self._prefixes)

    def wants_any(self, *names: str) -> bool:
        return any(self.wants(name) for name in names)

    def step(self, description: str) -> None:
        """Show what the benchmark is doing now in the progress display."""
        self._on_step(description)

    def notice(self, message: str) -> None:
        """Say something the reader of the run should know (a part skipped, and why)."""
        self._on_notice(message)


BenchmarkFunction = Callable[[Run], Iterator[Result]]


@dataclass(frozen=True)
class Benchmark:
    names: tuple[str, ...]
    function: BenchmarkFunction

    @property
    def title(self) -> str:
        return f"{self.function.__module__.removeprefix('bench.')}.{self.function.__name__}"


REGISTRY: list[Benchmark] = []


def benchmark(*names: str) -> Callable[[BenchmarkFunction], BenchmarkFunction]:
    """Register a benchmark under the dotted names of every result it may yield."""
    if not names:
        raise ValueError("a benchmark declares the names of the results it yields")

    def register(function: BenchmarkFunction) -> BenchmarkFunction:
        REGISTRY.append(Benchmark(tuple(names), function))
        return function

    return register


def matches(name: str, prefixes: Sequence[str]) -> bool:
    return not prefixes or any(name.startswith(prefix) for prefix in prefixes)


def median(samples: Sequence[float]) -> float:
    return statistics.median(samples)


def percentile(samples: Sequence[float], pct: float) -> float:
    """The nearest-rank percentile: the smallest sample with `pct`% of samples at or below it."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def latency_results(
    run: Run,
    name: str,
    latencies_ms: Sequence[float],
    note: str,
    *,
    p50_target: float | None = None,
) -> Iterator[Result]:
    """`<name>.p50_ms` and `<name>.p99_ms` of the same requests, each if the run wants it."""
    for pct, target in ((50, p50_target), (99, None)):
        bench = f"{name}.p{pct}_ms"
        if run.wants(bench):
            yield Result(
                bench,
                percentile(latencies_ms, pct),
                "ms",
                higher_is_better=False,
                target=target,
                note=note,
            )
