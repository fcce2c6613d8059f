"""`charter people ...`: work on people's data that spans the data and the key store."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer

from charter.cli import context
from charter.cli.output import emit_json
from charter.vault.recovery import KEY_GRACE, recover

app = typer.Typer(no_args_is_help=True)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for machines.")]


@app.command("resume-erasures", short_help="Finish interrupted erasures; settle new data keys.")
def resume_erasures(
    keys_older_than: Annotated[
        int,
        typer.Option(
            min=0,
            metavar="SECONDS",
            help="Settle data keys made at least this many seconds ago; 0 when no Charter "
            "server is running (a key younger than this may belong to a write in flight).",
        ),
    ] = int(KEY_GRACE.total_seconds()),
    as_json: JsonFlag = False,
) -> None:
    """Finish erasures that were interrupted, and destroy data keys made for writes that never
    committed. Charter does this at every start; this command does it now."""
    settings = context.settings()
    db = context.database()
    try:
        with context.keystore(settings) as keys:
            done = recover(db, keys, context.clock, key_grace=dt.timedelta(seconds=keys_older_than))
    finally:
        db.dispose()
    result = {
        "erasures_finished": [receipt.person_id for receipt in done.erasures],
        "keys_kept": done.keys_kept,
        "orphaned_keys_destroyed": done.orphaned_keys_destroyed,
    }
    if as_json:
        emit_json(result)
        return
    typer.echo(
        f"Finished {len(done.erasures)} interrupted erasure(s); destroyed "
        f"{done.orphaned_keys_destroyed} key(s) of writes that never committed; "
        f"{done.keys_kept} new key(s) settled as in use."
    )
