"""The `charter` command. Each command group lives in its own module and is imported only when
it is used, so that quick commands (`charter policy validate`) do not pay for the database or
the web stack at start-up."""

from __future__ import annotations

import importlib
import sys

import typer

# name -> (module, help). The module exposes `app`, a typer.Typer.
GROUPS: dict[str, tuple[str, str]] = {
    "policy": ("charter.cli.policy", "Validate, render and compare policy files."),
    "init": ("charter.cli.setup", "Prepare CHARTER_HOME: policy, keys, database."),
    "serve": ("charter.cli.serve", "Serve the Charter API and pages."),
    "staff": ("charter.cli.staff", "Personnel and their roles."),
    "keys": ("charter.cli.keys", "API keys and the master key."),
    "people": ("charter.cli.people", "Finish erasures and settle data keys."),
    "audit": ("charter.cli.audit", "Read and verify the audit log."),
}


def build_app(only: str | None = None) -> typer.Typer:
    """The CLI; with `only`, just that group is imported (the others are not needed)."""
    app = typer.Typer(
        name="charter",
        help="Charter keeps OMNI's privacy policy at run time.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    for name, (module, help_text) in GROUPS.items():
        if only is not None and name != only:
            continue
        group = importlib.import_module(module).app
        if isinstance(group, typer.Typer):
            app.add_typer(group, name=name, help=help_text)
    return app


def run() -> None:
    """Entry point of the `charter` script."""
    first = next((arg for arg in sys.argv[1:] if not arg.startswith("-")), None)
    app = build_app(first if first in GROUPS else None)
    app()


if __name__ == "__main__":
    run()
