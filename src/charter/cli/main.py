"""The `charter` command. Each command group lives in its own module and is imported only when
it is used, so that quick commands (`charter policy validate`) do not pay for the database or
the web stack at start-up."""

from __future__ import annotations

import importlib
import importlib.metadata
import sys
from typing import Annotated

import typer

# name -> (module, help). A group's module exposes `app`, a typer.Typer of its commands; a
# single command's module exposes `command`, the function, registered as a command of its own
# (a Typer with only a callback would show a phantom `COMMAND [ARGS]...` in its usage line).
GROUPS: dict[str, tuple[str, str]] = {
    "policy": ("charter.cli.policy", "Validate, render and compare policy files."),
    "init": ("charter.cli.setup", "Prepare CHARTER_HOME: policy, keys, database."),
    "serve": ("charter.cli.serve", "Serve the Charter API and pages."),
    "staff": ("charter.cli.staff", "Personnel and their roles."),
    "keys": ("charter.cli.keys", "API keys and the master key."),
    "people": ("charter.cli.people", "Finish erasures and settle data keys."),
    "audit": ("charter.cli.audit", "Read and verify the audit log."),
    "mail": ("charter.cli.mail", "The outbox, and sending what is due."),
    "disclosures": ("charter.cli.disclosures", "Read and export the ledger of disclosures."),
    "transfers": ("charter.cli.transfers", "Business transfers, with a notice to each person."),
    "requests": ("charter.cli.requests", "Requests mailed to the legal address; what is due."),
}


def version() -> str:
    """The installed package's version."""
    try:
        return importlib.metadata.version("charter")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - run from a bare checkout
        return "unknown"


def _print_version(wanted: bool) -> None:
    if wanted:
        typer.echo(f"charter {version()}")
        raise typer.Exit


def _options(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version",
            is_eager=True,
            callback=_print_version,
            help="Print Charter's version and exit.",
        ),
    ] = False,
) -> None:
    """Charter keeps OMNI's privacy policy at run time."""


def build_app(only: str | None = None) -> typer.Typer:
    """The CLI; with `only`, just that group is imported (the others are not needed), and
    with `only=""` none is (`charter --version`)."""
    app = typer.Typer(
        name="charter",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        # Click's own help layout: Rich's panels label every flag `<bool>`, and draw a usage
        # error as a box instead of the line that names the option.
        rich_markup_mode=None,
    )
    app.callback()(_options)
    for name, (module, help_text) in GROUPS.items():
        if only is not None and name != only:
            continue
        loaded = importlib.import_module(module)
        group = getattr(loaded, "app", None)
        if isinstance(group, typer.Typer):
            app.add_typer(group, name=name, help=help_text)
        else:
            app.command(name, short_help=help_text)(loaded.command)
    return app


def run() -> None:
    """Entry point of the `charter` script."""
    words = sys.argv[1:]
    first = next((arg for arg in words if not arg.startswith("-")), None)
    if first in GROUPS:
        app = build_app(first)
    elif first is None and "--version" in words and "--help" not in words:
        app = build_app("")
    else:
        app = build_app()
    app()


if __name__ == "__main__":
    run()
