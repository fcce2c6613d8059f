"""`charter transfers business`: disclose the people affected by a sale or merger to the
acquirer, recorded in the ledger, with a notice queued to each of them (C24)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from charter.cli import context
from charter.cli.output import emit_json, fail
from charter.cli.progress import progress_bar
from charter.db import column_length
from charter.disclosures.transfers import TransferNotice, business_transfer
from charter.mail.outbox import OUTBOX_KEY_PURPOSE, Outbox
from charter.staff.service import console_actor
from charter.vault.identifiers import BlindIndex
from charter.vault.models import Person

app = typer.Typer(no_args_is_help=True)
_PERSON_ID_LENGTH = column_length(Person, "id")


@app.command(short_help="Disclose people to an acquirer and queue a notice to each.")
def business(
    *,
    people: Annotated[
        Path,
        typer.Option(
            metavar="FILE",
            help="The people affected: a person id a line (plain or a JSON string); '-' for stdin.",
        ),
    ],
    acting_as: Annotated[
        str,
        typer.Option(
            "--as", metavar="HANDLE", help="The staff member who makes the transfer (audited)."
        ),
    ],
    acquirer: Annotated[
        str, typer.Option(metavar="ID", help="The acquirer, a recipient of the policy.")
    ] = "acquirer",
    category: Annotated[
        list[str] | None,
        typer.Option(
            metavar="CATEGORY",
            help="A category transferred (repeat it); all the acquirer's when none is given.",
        ),
    ] = None,
    acquirer_name: Annotated[
        str | None, typer.Option(metavar="NAME", help="The acquirer by name, for the notice.")
    ] = None,
    transfer: Annotated[
        str | None, typer.Option(metavar="TEXT", help="What is transferred, for the notice.")
    ] = None,
    effective_on: Annotated[
        dt.datetime | None,
        typer.Option(formats=["%Y-%m-%d"], metavar="DATE", help="When it takes effect."),
    ] = None,
    key: Annotated[
        str | None,
        typer.Option(
            metavar="KEY",
            help="Idempotency key; the same run again records nothing twice (default: "
            "derived from the acquirer and the people).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for machines.")] = False,
) -> None:
    """Record a business transfer of the people in FILE to the acquirer, on the policy's
    `business_transfer` ground, guarded and audited like any disclosure, and queue a notice
    to each person transferred at their latest e-mail address (sent by the running server,
    or `charter mail send`). People left out (erased, unknown id, ...) are counted."""
    settings = context.settings()
    ids = _read_people(people)
    idempotency_key = key or _derived_key(acquirer, ids)
    policy = context.policy()
    notice = TransferNotice(
        acquirer_name=acquirer_name,
        transfer=transfer,
        effective_on=effective_on.date() if effective_on is not None else None,
    )
    with (
        context.keystore(settings) as keys,
        progress_bar("Queueing notices", quiet=as_json) as progress,
        context.writing() as session,
    ):
        actor = console_actor(session, policy, handle=acting_as, permission="disclosures:make")
        outbox = Outbox(
            BlindIndex(keys.index_key()).derived_key(OUTBOX_KEY_PURPOSE),
            sender=settings.mail_from,
        )
        done = business_transfer(
            session,
            keys,
            context.clock,
            policy,
            outbox,
            actor=actor,
            acquirer=acquirer,
            people=ids,
            idempotency_key=idempotency_key,
            categories=category or (),
            notice=notice,
            progress=progress,
        )
    recorded = done.disclosure
    if recorded.refusal is not None:
        fail(f"{recorded.refusal.reason} ({recorded.refusal.code})")
    result = {
        "disclosure_id": recorded.id,
        "requested": recorded.requested,
        "disclosed": recorded.disclosed,
        "excluded": recorded.excluded,
        "codes": recorded.codes,
        "notices_queued": done.notices_queued,
        "without_address": done.without_address,
        "replayed": recorded.replayed,
        "idempotency_key": idempotency_key,
    }
    if as_json:
        emit_json(result)
        return
    if recorded.replayed:
        typer.echo(f"Already recorded as disclosure {recorded.id}; nothing recorded again.")
        return
    left_out = ", ".join(f"{count} {code}" for code, count in recorded.codes.items())
    typer.echo(
        f"Recorded disclosure {recorded.id}: {recorded.disclosed} of {recorded.requested} "
        f"people transferred to {acquirer}"
        + (f"; left out: {left_out}" if left_out else "")
        + f". Queued {done.notices_queued} notice(s); {done.without_address} without an "
        "e-mail address."
    )


def _read_people(path: Path) -> list[str]:
    """The person ids of FILE: one a line, plain or a JSON string; blank lines skipped."""
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read {path}: {getattr(exc, 'strerror', None) or 'not UTF-8 text'}")
    ids = []
    for number, line in enumerate(text.splitlines(), start=1):
        value = line.strip()
        if not value:
            continue
        if value.startswith('"'):
            try:
                value = json.loads(value)
            except ValueError:
                value = None
        if not isinstance(value, str) or not 1 <= len(value) <= _PERSON_ID_LENGTH:
            fail(f"line {number} of {path} is not a person id")
        ids.append(value)
    if not ids:
        fail(f"{path} names nobody")
    return ids


def _derived_key(acquirer: str, ids: list[str]) -> str:
    digest = hashlib.sha256("\n".join([acquirer, *ids]).encode()).hexdigest()[:32]
    return f"business-transfer-{digest}"
