"""`charter disclosures ...`: read the ledger of disclosures, and export it as NDJSON."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer
from rich.console import Console
from rich.table import Table

from charter.cli import context
from charter.cli.output import emit_json, fail, given_time
from charter.cli.progress import progress_bar
from charter.disclosures.ledger import (
    count_disclosures,
    disclosures,
    export_ledger,
    record_export,
)

app = typer.Typer(no_args_is_help=True)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for machines.")]
Recipient = Annotated[str | None, typer.Option(metavar="ID", help="Only to this recipient.")]
Purpose = Annotated[str | None, typer.Option(metavar="ID", help="Only for this purpose.")]
Ground = Annotated[str | None, typer.Option(metavar="ID", help="Only on this transfer ground.")]
Person = Annotated[
    str | None, typer.Option(metavar="PERSON_ID", help="Only disclosures of this person's data.")
]
Since = Annotated[
    str | None, typer.Option(metavar="TIME", help="From this time on (ISO 8601; UTC if bare).")
]
Until = Annotated[str | None, typer.Option(metavar="TIME", help="Before this time (ISO 8601).")]


def _moment(text: str | None, name: str) -> dt.datetime | None:
    if text is None:
        return None
    try:
        return given_time(text)
    except typer.BadParameter as exc:
        fail(f"--{name}: {exc}", code=2)


def _filters(**given: str | None) -> dict[str, Any]:
    filters: dict[str, Any] = dict(given)
    filters["since"] = _moment(given.get("since"), "since")
    filters["until"] = _moment(given.get("until"), "until")
    return filters


@app.command("list", short_help="The ledger of disclosures, oldest first.")
def list_disclosures(
    *,
    recipient: Recipient = None,
    purpose: Purpose = None,
    ground: Ground = None,
    person: Person = None,
    since: Since = None,
    until: Until = None,
    after: Annotated[
        int, typer.Option(min=0, metavar="ID", help="Only disclosures after this id.")
    ] = 0,
    limit: Annotated[
        int, typer.Option(min=1, max=10_000, metavar="N", help="Show at most this many.")
    ] = 100,
    as_json: JsonFlag = False,
) -> None:
    """The disclosures of the ledger, oldest first, filtered: to whom, for what, on what
    ground, by whom, and how many people. Never a personal value."""
    filters = _filters(
        recipient=recipient, purpose=purpose, ground=ground, person=person, since=since, until=until
    )
    with context.reading() as session:
        entries = disclosures(session, filters=filters, after=after, limit=limit)
    if as_json:
        emit_json({"disclosures": [entry.as_json() for entry in entries]})
        return
    if not entries:
        typer.echo("The ledger holds no such disclosure.")
        return
    table = Table("id", "at (UTC)", "recipient", "purpose", "ground", "people", "left out")
    for entry in entries:
        table.add_row(
            str(entry.id),
            entry.at[:19].replace("T", " "),
            entry.recipient,
            entry.purpose,
            entry.ground or "",
            str(entry.disclosed),
            str(entry.excluded),
        )
    Console().print(table)


@app.command(short_help="Write the ledger as NDJSON, to a file or stdout.")
def export(
    *,
    out: Annotated[
        Path, typer.Option("--out", metavar="FILE", help="Where to write it; '-' for stdout.")
    ] = Path("-"),
    people: Annotated[
        bool, typer.Option("--people", help="Also a line per person disclosed.")
    ] = False,
    recipient: Recipient = None,
    purpose: Purpose = None,
    ground: Ground = None,
    person: Person = None,
    since: Since = None,
    until: Until = None,
) -> None:
    """Write the ledger as NDJSON, oldest first: a line per disclosure (`kind`:
    `disclosure`) and, with --people, a line per person it disclosed (`kind`: `person`).
    Read a page at a time; the export is audited."""
    filters = _filters(
        recipient=recipient, purpose=purpose, ground=ground, person=person, since=since, until=until
    )
    with context.writing() as session:
        total = count_disclosures(session, filters=filters)
        record_export(
            session, context.clock, actor=context.operator(), filters=filters, people=people
        )
    db = context.database()
    written = 0
    try:
        with (
            _opened(out) as sink,
            progress_bar("Exporting disclosures", quiet=str(out) == "-") as progress,
        ):
            for line in export_ledger(db.reading, filters=filters, people=people):
                sink.write(json.dumps(line, separators=(",", ":")) + "\n")
                if line["kind"] == "disclosure":
                    written += 1
                    if progress is not None:
                        progress(written, total)
    finally:
        db.dispose()
    if str(out) != "-":
        typer.echo(f"Wrote {written} disclosure(s) to {out}.")


def _opened(out: Path) -> contextlib.AbstractContextManager[TextIO]:
    if str(out) == "-":
        return contextlib.nullcontext(sys.stdout)
    try:
        return out.open("w", encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write {out}: {exc.strerror}")
