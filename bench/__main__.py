"""`python -m bench [--only PREFIX]`: run Charter's benchmarks (docs/benchmarks.md).

Every `bench/bench_*.py` module is imported, so a new benchmark only needs a new module (or a
new function in one) registered with `@benchmark`.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import math
import pkgutil
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Column, Table

from bench.harness import REGISTRY, Benchmark, Result, Run, matches

PACKAGE = Path(__file__).resolve().parent
RESULTS = PACKAGE / "results" / "latest.jsonl"


def discover() -> list[Benchmark]:
    """Import every `bench_*` module of this package; their decorators fill the registry."""
    for module in pkgutil.iter_modules([str(PACKAGE)]):
        if module.name.startswith("bench_"):
            importlib.import_module(f"bench.{module.name}")
    return list(REGISTRY)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="PREFIX",
        help="run only the results whose dotted name starts with PREFIX (repeatable)",
    )
    parser.add_argument("--list", action="store_true", help="list the result names and exit")
    parser.add_argument(
        "--output",
        type=Path,
        default=RESULTS,
        help="where to write the JSON lines (default: bench/results/latest.jsonl)",
    )
    args = parser.parse_args(argv)
    prefixes: list[str] = [prefix for prefix in args.only if prefix]
    console = Console()
    if not console.is_terminal:
        # Logs and CI have no width of their own; Rich's default of 80 would fold the table.
        console = Console(width=160)

    benchmarks = discover()
    if args.list:
        for bench in benchmarks:
            for name in bench.names:
                print(name)
        return 0
    selected = [
        bench for bench in benchmarks if any(matches(name, prefixes) for name in bench.names)
    ]
    if not selected:
        known = ", ".join(name for bench in benchmarks for name in bench.names)
        console.print(f"No benchmark result starts with {' or '.join(prefixes)}. Known: {known}")
        return 2

    results, notices, failed = _run(console, selected, prefixes)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("".join(json.dumps(result.as_json()) + "\n" for result in results))

    console.print(_table(results))
    for result in results:
        if result.note:
            console.print(f"[dim]{result.bench}:[/] {result.note}", highlight=False)
    for notice in notices:
        console.print(f"[yellow]note:[/] {notice}", highlight=False)
    for title in failed:
        console.print(f"[red]failed:[/] {title}")
    console.print(f"{len(results)} results written to {_shown(args.output)}")
    return 1 if failed else 0


def _run(
    console: Console, selected: list[Benchmark], prefixes: list[str]
) -> tuple[list[Result], list[str], list[str]]:
    results: list[Result] = []
    notices: list[str] = []
    failed: list[str] = []
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("benchmarks", total=len(selected))
        for bench in selected:

            def step(description: str, title: str = bench.title) -> None:
                progress.update(task, description=f"[bold]{title}[/]: {description}")

            step("starting")
            run = Run(prefixes, on_step=step, on_notice=notices.append)
            try:
                with contextlib.closing(bench.function(run)) as produced:
                    for result in produced:
                        if result.bench not in bench.names:
                            raise RuntimeError(
                                f"{bench.title} yielded {result.bench!r}, which "
                                "its @benchmark does not declare"
                            )
                        if matches(result.bench, prefixes):
                            results.append(result)
                            console.print(
                                json.dumps(result.as_json()),
                                markup=False,
                                highlight=False,
                                soft_wrap=True,
                            )
            except Exception:  # noqa: BLE001 - one failing benchmark must not stop the rest
                console.print_exception()
                failed.append(bench.title)
            progress.advance(task)
        progress.update(task, description="done")
    return results, notices, failed


def _table(results: list[Result]) -> Table:
    """bench, value, unit, which way is better, the target and whether it was met, and the
    ratio against an anchor when any result has one."""
    anchored = any(result.anchor is not None for result in results)
    table = Table(Column("bench", no_wrap=True), Column("value", justify="right"), "unit", "")
    table.add_column("target", no_wrap=True)
    if anchored:
        table.add_column("vs anchor")
    for result in results:
        cells = [
            result.bench,
            _number(result.value),
            result.unit,
            "↑" if result.higher_is_better else "↓",
            _target(result),
        ]
        if anchored:
            ratio = result.ratio
            cells.append("" if ratio is None else f"{ratio:.2f}x {result.anchor}")
        table.add_row(*cells)
    return table


def _target(result: Result) -> str:
    shown = []
    if result.target is not None:
        bound = f"{'≥' if result.higher_is_better else '≤'} {_number(result.target)}"
        shown.append(_met(bound, result.meets_target))
    if result.ratio_target is not None:
        shown.append(_met(f"ratio ≥ {result.ratio_target}", result.meets_ratio_target))
    return "; ".join(shown)


def _met(bound: str, met: bool | None) -> str:
    return f"[green]{bound} met[/]" if met else f"[red]{bound} missed[/]"


def _number(value: float) -> str:
    """Three significant digits, and thousands separators for large numbers."""
    if value == 0 or not math.isfinite(value):
        return str(value)
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    decimals = max(0, 2 - math.floor(math.log10(abs(value))))
    return f"{value:.{decimals}f}"


def _shown(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.resolve().relative_to(Path.cwd()))
    return str(path)


if __name__ == "__main__":
    raise SystemExit(main())
