"""`charter audit ...`: verify the chain and take checkpoints."""

from __future__ import annotations

from typing import Annotated

import typer

from charter.audit.chain import Checkpoint, verify_chain
from charter.audit.chain import checkpoint as head_checkpoint
from charter.cli import context
from charter.cli.output import emit_json, fail

app = typer.Typer(no_args_is_help=True)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for machines.")]


def _checkpoint(text: str) -> Checkpoint:
    try:
        return Checkpoint.parse(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


@app.command()
def verify(
    against: Annotated[
        Checkpoint | None,
        typer.Option(
            parser=_checkpoint,
            metavar="SEQ:HASH",
            help="A checkpoint from `charter audit checkpoint`: fail unless the chain holds it.",
        ),
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
    """Print the chain's head as SEQ:HASH; keep it apart from the database, and later
    `charter audit verify --against SEQ:HASH` proves the chain still holds it."""
    with context.database().reading() as session:
        found = head_checkpoint(session)
    if found is None:
        fail("the audit chain is empty: there is nothing to take a checkpoint of")
    if as_json:
        emit_json({"seq": found.seq, "hash": found.hash, "checkpoint": str(found)})
    else:
        typer.echo(str(found))
