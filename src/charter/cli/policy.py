"""`charter policy ...`: validate, render and compare policy files."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from charter.cli.output import emit_json
from charter.policy.loader import PolicyError, load_policy
from charter.policy.schema import Policy

app = typer.Typer(no_args_is_help=True)

FileArg = Annotated[Path, typer.Argument(help="A policy file (YAML).", show_default=False)]


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
        RenderFormat, typer.Option("--format", help="Output format.")
    ] = RenderFormat.html,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here, not stdout.")
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


@app.command()
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
