"""`charter requests ...`: read the requests mailed to the legal address, and list the open
requests coming due."""

from __future__ import annotations

import contextlib
import datetime as dt
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from charter.cli import context
from charter.cli.output import emit_json, fail, table_time
from charter.cli.progress import progress_bar
from charter.mail.outbox import OUTBOX_KEY_PURPOSE, Outbox
from charter.requests.mailbox import (
    ImapServer,
    ImapSource,
    ImapUrlProblem,
    MailboxUnavailable,
    MaildirSource,
    MailIntakeReport,
    MailSource,
    ingest_mail,
)
from charter.requests.service import Links, due_requests
from charter.vault.identifiers import BlindIndex

app = typer.Typer(no_args_is_help=True)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for machines.")]
IMAP_URL_SETTING = "CHARTER_IMAP_URL"


@app.command("ingest-mail", short_help="Record the requests mailed to the legal address.")
def ingest_mail_command(
    *,
    maildir: Annotated[
        Path | None,
        typer.Option(metavar="DIR", help="A Maildir folder (new/, cur/) to read."),
    ] = None,
    imap: Annotated[
        str | None,
        typer.Option(
            metavar="URL",
            envvar=IMAP_URL_SETTING,
            show_envvar=False,
            help="The IMAP mailbox to read: imaps://user:pass@host/INBOX, "
            "imap://user:pass@host/INBOX?starttls=1, or plain imap:// to a loopback "
            f"address; default {IMAP_URL_SETTING}.",
        ),
    ] = None,
    ca_file: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="PEM certificates that vouch for the IMAP server (default: the system's).",
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Read the unread messages of a Maildir (--maildir) and/or an IMAP mailbox (--imap, or
    CHARTER_IMAP_URL) and record the request each one makes, once per message: the
    correspondence kept sealed, a verification link and an acknowledgement queued to the
    sender (sent by the running server, or `charter mail send`). A message is marked read
    once recorded; one that is no request (no sender to answer, a bounce) is flagged for
    staff. Prints the counts."""
    if maildir is None and imap is None:
        fail(f"name a mailbox: --maildir DIR or --imap URL (or set {IMAP_URL_SETTING})", code=2)
    server = _imap_server(imap) if imap is not None else None
    settings = context.settings()
    policy = context.policy()
    db = context.database()
    report = MailIntakeReport()
    try:
        with (
            context.keystore(settings) as keys,
            contextlib.ExitStack() as stack,
            progress_bar("Reading mail", quiet=as_json) as progress,
        ):
            index = BlindIndex(keys.index_key())
            outbox = Outbox(index.derived_key(OUTBOX_KEY_PURPOSE), sender=settings.mail_from)
            links = Links(index, settings.public_url)
            sources: list[MailSource] = []
            if maildir is not None:
                sources.append(MaildirSource(maildir))
            if server is not None:
                sources.append(stack.enter_context(ImapSource(server, ca_file=ca_file)))
            for source in sources:
                done = ingest_mail(
                    db,
                    keys,
                    context.clock,
                    policy,
                    source,
                    actor=context.operator(),
                    outbox=outbox,
                    links=links,
                    progress=progress,
                )
                report = _sum(report, done)
    except MailboxUnavailable as exc:
        fail(str(exc))
    finally:
        db.dispose()
    if as_json:
        emit_json(report.as_json())
        return
    typer.echo(
        f"Read {report.read} message(s): {report.created} request(s) created "
        f"({report.unclear} unclear, for staff to classify), {report.already_known} known "
        f"already, {report.kept_for_staff} kept for staff."
    )


def _imap_server(url: str) -> ImapServer:
    try:
        return ImapServer.parse(url, name="--imap")
    except ImapUrlProblem as exc:
        fail(str(exc), code=2)


def _sum(total: MailIntakeReport, more: MailIntakeReport) -> MailIntakeReport:
    return MailIntakeReport(
        read=total.read + more.read,
        created=total.created + more.created,
        already_known=total.already_known + more.already_known,
        unclear=total.unclear + more.unclear,
        kept_for_staff=total.kept_for_staff + more.kept_for_staff,
        types=total.types + more.types,
        kept=total.kept + more.kept,
    )


@app.command(short_help="The open requests due within DAYS days, soonest first.")
def due(
    within: Annotated[
        int,
        typer.Option(
            min=0,
            max=3650,
            metavar="DAYS",
            help="Due within this many days from now (past due too).",
        ),
    ] = 7,
    as_json: JsonFlag = False,
) -> None:
    """The open requests (received, awaiting verification, verified, in progress) due
    within DAYS days, past due ones included, soonest first: id, type, state, channel, when
    received and when due. Never who asked."""
    before = context.clock.now() + dt.timedelta(days=within)
    with context.reading() as session:
        found = list(due_requests(session, before=before))
    if as_json:
        emit_json(
            {
                "within_days": within,
                "before": before,
                "requests": [
                    {
                        "id": request.id,
                        "type": request.type,
                        "state": request.state,
                        "channel": request.channel,
                        "received_at": request.received_at,
                        "due_at": request.due_at,
                    }
                    for request in found
                ],
            }
        )
        return
    if not found:
        typer.echo(f"No open request is due within {within} day(s).")
        return
    table = Table("id", "type", "state", "channel", "received (UTC)", "due (UTC)")
    for request in found:
        table.add_row(
            request.id,
            request.type,
            request.state,
            request.channel,
            table_time(request.received_at),
            table_time(request.due_at),
        )
    Console().print(table)
