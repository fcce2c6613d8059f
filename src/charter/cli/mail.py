"""`charter mail ...`: read the outbox, and send what is due now."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from charter.cli import context
from charter.cli.output import emit_json, table_time
from charter.mail.outbox import OUTBOX_KEY_PURPOSE, STATES, outbox_counts, outbox_entries
from charter.mail.sender import sender_for
from charter.vault.identifiers import BlindIndex

app = typer.Typer(no_args_is_help=True)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for machines.")]


def _state(value: str | None) -> str | None:
    if value is not None and value not in STATES:
        raise typer.BadParameter(f"a state is one of {', '.join(STATES)}")
    return value


@app.command(short_help="The messages in the outbox, newest first; never their content.")
def outbox(
    state: Annotated[
        str | None,
        typer.Option(
            callback=_state,
            metavar="STATE",
            help=f"Only messages in this state: {', '.join(STATES)}.",
        ),
    ] = None,
    limit: Annotated[
        int, typer.Option(min=1, max=10_000, metavar="N", help="Show at most this many.")
    ] = 50,
    as_json: JsonFlag = False,
) -> None:
    """The messages in the outbox, newest first: template, state, tries, and for a failed
    or waiting message the last error's code and reason. Never a recipient or a body."""
    with context.reading() as session:
        entries = outbox_entries(session, state=state, limit=limit)
        counts = outbox_counts(session)
    if as_json:
        emit_json({"counts": counts, "messages": [entry.as_json() for entry in entries]})
        return
    if not entries:
        typer.echo("The outbox holds no messages." if state is None else f"No {state} messages.")
        return
    table = Table("id", "created (UTC)", "template", "state", "tries", "next try / sent", "error")
    for entry in entries:
        table.add_row(
            entry.id,
            table_time(entry.created_at),
            entry.template,
            entry.state,
            str(entry.attempts),
            table_time(entry.sent_at)
            if entry.sent_at is not None
            else table_time(entry.next_attempt_at)
            if entry.state == "queued"
            else "",
            f"{entry.error_code} {entry.error_reason}" if entry.error_code else "",
        )
    Console().print(table)
    typer.echo(", ".join(f"{count} {name}" for name, count in counts.items() if count))


@app.command(short_help="Send the messages that are due now, and exit.")
def send(as_json: JsonFlag = False) -> None:
    """Send every message that is due now through the mailer CHARTER_MAILER names (the
    outbox keeps them; SMTP sends them), the same way a running server does every second."""
    settings = context.settings()
    db = context.database()
    try:
        with context.keystore(settings) as keys:
            key = BlindIndex(keys.index_key()).derived_key(OUTBOX_KEY_PURPOSE)
        report = sender_for(settings, db, context.clock, key).send_due()
    finally:
        db.dispose()
    if as_json:
        emit_json(report.as_json())
        return
    typer.echo(
        f"Delivered {report.delivered} message(s); {report.retrying} will be tried again; "
        f"{report.failed} failed."
    )
