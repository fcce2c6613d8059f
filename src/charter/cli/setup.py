"""`charter init`: prepare CHARTER_HOME (policy, database); safe to run again."""

from __future__ import annotations

from rich.console import Console

from charter.boot import StartupError, boot, prepare_home
from charter.cli import context
from charter.cli.output import fail


def command() -> None:
    """Create the data folder with the OMNI policy, and bring the database up to date."""
    console = Console()
    settings = context.settings(require_home=False)
    try:
        for line in prepare_home(settings):
            console.print(f"[green]✓[/] {line}")
        booted = boot(settings, context.clock)
    except StartupError as exc:
        fail(str(exc))
        return
    booted.close()
    console.print(
        f"[green]✓[/] database ready and policy {booted.policy.version} loaded ({settings.home})"
    )
