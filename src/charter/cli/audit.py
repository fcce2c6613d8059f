"""`charter audit ...`: verify the chain and take checkpoints."""

from __future__ import annotations

from typing import Annotated

import typer

from charter.audit.chain import head, verify_chain
from charter.cli import context
from charter.cli.output import emit_json

app = typer.Typer(no_args_is_help=True)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for machines.")]


@app.command()
def verify(
    against: Annotated[
        str | None, typer.Option(help="A head hash from `charter audit checkpoint`.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Walk the audit chain; exit 1 and name the first bad entry if it was tampered with."""
    with context.database().reading() as session:
        result = verify_chain(session, against=against)
    if as_json:
        emit_json(result.as_json())
    elif result.ok:
        typer.echo(f"Audit chain intact: {result.entries} entries, head {result.head_hash}.")
    elif result.first_bad_seq is None:
        typer.echo(f"Audit chain broken: {result.reason}.", err=True)
    else:
        typer.echo(
            f"Audit chain broken at entry {result.first_bad_seq}: {result.reason}.", err=True
        )
    if not result.ok:
        raise typer.Exit(1)


@app.command()
def checkpoint(as_json: JsonFlag = False) -> None:
    """Print the current head hash; keep it elsewhere and later `verify --against` it."""
    with context.database().reading() as session:
        seq, digest = head(session)
    if as_json:
        emit_json({"seq": seq, "hash": digest})
    else:
        typer.echo(digest)
