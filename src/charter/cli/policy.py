"""`charter policy ...`: validate, render and compare policy files, and trace their clauses."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from charter.cli.output import emit_json, fail
from charter.policy.loader import PolicyError, load_policy
from charter.policy.schema import Policy
from charter.policy.trace import ClauseTrace, Status, Trace, trace_clauses
from charter.settings import BUNDLED_POLICY

app = typer.Typer(no_args_is_help=True)

FileArg = Annotated[
    Path, typer.Argument(metavar="FILE", help="A policy file (YAML).", show_default=False)
]


class RenderFormat(StrEnum):
    html = "html"
    markdown = "markdown"


def _load_or_exit(path: Path) -> Policy:
    try:
        return load_policy(path)
    except PolicyError as exc:
        for problem in exc.problems:
            sys.stderr.write(f"{problem}\n")
        raise typer.Exit(1) from None


@app.command()
def validate(
    file: FileArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Check a policy file; print FILE:LINE:COLUMN for every problem. Exit 1 if there is one."""
    try:
        policy = load_policy(file)
    except PolicyError as exc:
        if as_json:
            emit_json({"valid": False, "problems": [vars(p) for p in exc.problems]})
        else:
            for problem in exc.problems:
                sys.stderr.write(f"{problem}\n")
        raise typer.Exit(1) from None
    if as_json:
        emit_json({"valid": True, "version": policy.organisation.version, "problems": []})
    else:
        sys.stdout.write(f"{file}: valid (version {policy.organisation.version})\n")


@app.command()
def render(
    file: FileArg,
    fmt: Annotated[
        RenderFormat, typer.Option("--format", metavar="html|markdown", help="Output format.")
    ] = RenderFormat.html,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", metavar="FILE", help="Write here, not stdout.")
    ] = None,
) -> None:
    """Render the human-readable policy page from a policy file."""
    from charter.policy.render import render_html, render_markdown  # noqa: PLC0415 - only this command pays for Jinja2

    policy = _load_or_exit(file)
    text = render_html(policy) if fmt is RenderFormat.html else render_markdown(policy)
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")


@app.command(short_help="Say what changed between two versions of a policy.")
def diff(
    old: FileArg,
    new: FileArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print the changes as JSON.")] = False,
) -> None:
    """Say what changed between two versions of a policy, in words a person understands."""
    from charter.policy.diff import diff_policies  # noqa: PLC0415 - kept off `validate`'s start-up

    changes = diff_policies(_load_or_exit(old), _load_or_exit(new))
    if as_json:
        emit_json({"changes": [change.as_json() for change in changes]})
        return
    if not changes:
        sys.stdout.write("No changes.\n")
    for change in changes:
        sys.stdout.write(f"- {change.message}\n")


def _checkout_tests() -> Path | None:
    """The suite of the source checkout Charter runs from (`tests/` beside `src/`); an
    installed package has none."""
    root = BUNDLED_POLICY.parents[1]
    tests = root / "tests"
    return tests if (root / "src").is_dir() and tests.is_dir() else None


@app.command(short_help="Trace each clause C1-C26 to its policy items and tests.")
def clauses(
    policy_file: Annotated[
        Path,
        typer.Option("--policy", metavar="FILE", help="The policy file whose clauses are traced."),
    ] = BUNDLED_POLICY,
    tests: Annotated[
        Path | None,
        typer.Option(
            "--tests",
            metavar="DIR",
            help="The folder of tests to read for clause markers; default: the checkout's tests/.",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the trace as JSON.")] = False,
) -> None:
    """Trace each clause C1-C26: the policy items that declare it, the tests that prove it."""
    if tests is None:
        tests = _checkout_tests()
        if tests is None:
            fail("no tests folder beside the source Charter runs from: pass --tests DIR", code=2)
    if not tests.is_dir():
        fail(f"no tests folder at {tests}", code=2)
    trace = trace_clauses(_load_or_exit(policy_file), tests)
    if as_json:
        emit_json({"policy": str(policy_file), "tests": str(tests), **trace.as_json()})
        return
    for problem in trace.problems:
        sys.stderr.write(f"{problem}\n")
    _print_trace_table(trace)
    enforced = trace.having(Status.ENFORCED)
    summary = (
        f"{len(enforced)} of {len(trace.clauses)} clauses enforced by behaviour tests; "
        f"declared but not yet enforced: {', '.join(trace.having(Status.DECLARED)) or 'none'}"
    )
    missing = trace.having(Status.NOT_DECLARED)
    if missing:
        summary += f"; not declared: {', '.join(missing)}"
    sys.stdout.write(summary + "\n")


def _print_trace_table(trace: Trace) -> None:
    from rich.console import Console  # noqa: PLC0415 - only this command pays for Rich
    from rich.table import Table  # noqa: PLC0415 - as above

    table = Table(title="Clause trace")
    table.add_column("clause", no_wrap=True)
    table.add_column("items", justify="right")
    table.add_column("declared by", overflow="fold")
    table.add_column("tests", justify="right")
    table.add_column("status", no_wrap=True)
    for clause in trace.clauses:
        table.add_row(
            clause.clause,
            str(len(clause.items)),
            _declared_by(clause),
            str(len(clause.tests)),
            str(clause.status),
        )
    Console(file=sys.stdout).print(table)


def _declared_by(clause: ClauseTrace) -> str:
    """The items of one clause by the part of the policy they are in: a lone item by its
    path, several by their count (`--json` lists them all), so that the table stays short."""
    parts: dict[str, list[str]] = {}
    for path in clause.items:
        parts.setdefault(path.partition(".")[0], []).append(path)
    return ", ".join(
        paths[0] if len(paths) == 1 else f"{len(paths)} {part}" for part, paths in parts.items()
    )
