"""`charter keys ...`: API keys for staff."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer

from charter.cli import context
from charter.cli.output import emit_json, fail
from charter.errors import CharterError
from charter.staff import service

app = typer.Typer(no_args_is_help=True)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for machines.")]


@app.command("create")
def create(
    staff: Annotated[str, typer.Option("--staff", help="The staff member the key belongs to.")],
    expires_in_days: Annotated[int | None, typer.Option(min=1, help="Expire after N days.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create an API key and print it once; only its hash is kept."""
    db = context.database()
    expires = dt.timedelta(days=expires_in_days) if expires_in_days else None
    try:
        with db.writing() as session:
            issued = service.create_key(session, context.clock, actor=context.operator(),
                                        staff_name=staff, expires_in=expires)
    except CharterError as exc:
        fail(exc.message)
    if as_json:
        emit_json({"key": issued.key, "key_id": issued.key_id, "staff": issued.staff_name,
                   "expires_at": issued.expires_at.isoformat() if issued.expires_at else None})
    else:
        typer.echo(issued.key)
        typer.echo(f"(key id {issued.key_id}; this is the only time the key is shown)", err=True)


@app.command("revoke")
def revoke(key_id: Annotated[str, typer.Argument(help="The key id shown at creation.")],
           as_json: JsonFlag = False) -> None:
    """Revoke a key; it fails on the next request."""
    db = context.database()
    try:
        with db.writing() as session:
            service.revoke_key(session, context.clock, actor=context.operator(), key_id=key_id)
    except CharterError as exc:
        fail(exc.message)
    if as_json:
        emit_json({"key_id": key_id, "revoked": True})
    else:
        typer.echo(f"Revoked key {key_id}.")
