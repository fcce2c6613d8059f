"""`charter audit ...`: read the log, verify the chain and take checkpoints."""

from __future__ import annotations

import datetime as dt
import json
import shlex
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from charter.audit.chain import Checkpoint, verify_chain
from charter.audit.chain import checkpoint as head_checkpoint
from charter.audit.models import MAX_SEQ
from charter.audit.reading import EntryView, next_after, page_entries
from charter.cli import context
from charter.cli.output import emit_json, fail, given_time, json_time
from charter.cli.progress import progress_bar

app = typer.Typer(no_args_is_help=True)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for machines.")]
# Entries on a page of `charter audit log`, unless told otherwise: a screenful or two.
PAGE = 50


def _checkpoint(text: str) -> Checkpoint:
    try:
        return Checkpoint.parse(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def _sequence(value: int) -> int:
    if not 0 <= value <= MAX_SEQ:
        raise typer.BadParameter(f"an entry's sequence number is 0 to {MAX_SEQ}")
    return value


@app.command("log", short_help="Read the audit log, filtered, a page at a time.")
def log(
    *,
    action: Annotated[
        str | None,
        typer.Option(metavar="ACTION", help="Only entries of this action, e.g. staff:key:created."),
    ] = None,
    actor: Annotated[
        str | None,
        typer.Option(
            metavar="ACTOR",
            help="Only entries by this actor, e.g. cli:sam, or staff:3 for all that staff "
            "member 3 did with any of their keys.",
        ),
    ] = None,
    person: Annotated[
        str | None,
        typer.Option(
            metavar="PERSON_ID", help="Only entries about this person (target person:PERSON_ID)."
        ),
    ] = None,
    since: Annotated[
        dt.datetime | None,
        typer.Option(
            parser=given_time,
            metavar="TIME",
            help="Only entries recorded at TIME or later (ISO 8601; UTC unless it has an offset).",
        ),
    ] = None,
    until: Annotated[
        dt.datetime | None,
        typer.Option(
            parser=given_time,
            metavar="TIME",
            help="Only entries recorded before TIME (ISO 8601; UTC unless it has an offset).",
        ),
    ] = None,
    limit: Annotated[
        int, typer.Option(min=1, max=1000, metavar="N", help="Show at most this many entries.")
    ] = PAGE,
    after: Annotated[
        int,
        typer.Option(
            callback=_sequence,
            metavar="SEQ",
            help="Continue after entry SEQ: the cursor the previous page ended with.",
            show_default=False,
        ),
    ] = 0,
    as_json: JsonFlag = False,
) -> None:
    """Read the audit log in chain order, a page at a time, filtered by action, actor,
    person and time; the end of a full page says how to ask for the next one."""
    if since is not None and until is not None and since >= until:
        fail("--since must be earlier than --until", code=2)
    with context.reading() as session:
        entries = page_entries(
            session,
            after=after,
            limit=limit,
            action=action,
            actor=actor,
            target=f"person:{person.removeprefix('person:')}" if person is not None else None,
            since=since,
            until=until,
        )
    following = next_after(entries, limit)
    if as_json:
        emit_json({"entries": [entry.as_json() for entry in entries], "next": following})
        return
    if not entries:
        typer.echo("No audit entries match." if after == 0 else f"No audit entries after {after}.")
        return
    _print_entries(entries)
    if following is not None:
        again = ["charter", "audit", "log", "--after", str(following)]
        for option, value in (
            ("--action", action),
            ("--actor", actor),
            ("--person", person),
            ("--since", json_time(since)),
            ("--until", json_time(until)),
            ("--limit", str(limit) if limit != PAGE else None),
        ):
            if value is not None:
                again += [option, value]
        typer.echo(f"More entries follow: {shlex.join(again)}", err=True)


def _print_entries(entries: list[EntryView]) -> None:
    table = Table("seq", "at (UTC)", "actor", "action", "target", "outcome", "details")
    for entry in entries:
        table.add_row(
            str(entry.seq),
            # The stored form is `2026-11-25T12:00:00.000000Z`: to the second is enough here.
            entry.at[:19].replace("T", " "),
            entry.actor,
            entry.action,
            entry.target,
            entry.outcome,
            json.dumps(entry.details, separators=(",", ":"), ensure_ascii=False)
            if entry.details
            else "",
        )
    Console().print(table)


@app.command(short_help="Walk the audit chain; name the first bad entry.")
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
    with (
        context.reading() as session,
        progress_bar("Verifying the audit chain", quiet=as_json) as report,
    ):
        result = verify_chain(session, against=against, progress=report)
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


@app.command(short_help="Print the chain's head as SEQ:HASH.")
def checkpoint(as_json: JsonFlag = False) -> None:
    """Print the chain's head as SEQ:HASH; keep it apart from the database, and later
    `charter audit verify --against SEQ:HASH` proves the chain still holds it."""
    with context.reading() as session:
        found = head_checkpoint(session)
    if found is None:
        fail("the audit chain is empty: there is nothing to take a checkpoint of")
    if as_json:
        emit_json({"seq": found.seq, "hash": found.hash, "checkpoint": str(found)})
    else:
        typer.echo(str(found))
