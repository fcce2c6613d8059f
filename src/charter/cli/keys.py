"""`charter keys ...`: API keys for staff, and rotation of the master key."""

from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from charter.boot import StartupError, master_key, open_keystore, pending_master_key_file
from charter.cli import context
from charter.cli.output import emit_json, fail, json_time, table_time
from charter.cli.progress import Report, progress_bar
from charter.staff import service
from charter.vault.crypto import DecryptionFailed, encode_key, new_key
from charter.vault.keystore import MasterKeyMismatch, SqlKeyStore
from charter.vault.rotation import finish_rotation, settle_rotations, start_rotation

app = typer.Typer(no_args_is_help=True)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for machines.")]


@app.command("create")
def create(
    staff: Annotated[
        str,
        typer.Option("--staff", metavar="NAME", help="The staff member the key belongs to."),
    ],
    expires_in_days: Annotated[
        int | None, typer.Option(min=1, metavar="DAYS", help="Expire after this many days.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create an API key and print it once; only its hash is kept."""
    expires = dt.timedelta(days=expires_in_days) if expires_in_days else None
    with context.writing() as session:
        issued = service.create_key(
            session,
            context.clock,
            actor=context.operator(),
            staff_name=staff,
            expires_in=expires,
        )
    if as_json:
        emit_json(
            {
                "key": issued.key,
                "key_id": issued.key_id,
                "staff": issued.staff_name,
                "expires_at": json_time(issued.expires_at),
            }
        )
    else:
        typer.echo(issued.key)
        typer.echo(f"(key id {issued.key_id}; this is the only time the key is shown)", err=True)


@app.command("list", short_help="List API keys and their last use; never a secret.")
def list_(
    staff: Annotated[
        str | None,
        typer.Option("--staff", metavar="NAME", help="Only the keys of this staff member."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """List API keys: their id, holder, creation, last use, expiry and state; never a key's
    secret (only its hash is kept). The last use is the last thing the audit log records
    done with the key."""
    now = context.clock.now()
    with context.reading() as session:
        uses = service.key_uses(session, staff)
    if as_json:
        emit_json(
            {
                "keys": [
                    {
                        "key_id": use.key.key_id,
                        "staff": use.staff_name,
                        "created_at": use.key.created_at,
                        "last_used_at": use.last_used_at,
                        "expires_at": use.key.expires_at,
                        "revoked_at": use.key.revoked_at,
                        "revoked": use.key.revoked_at is not None,
                        "state": service.key_state(use.key, now),
                    }
                    for use in uses
                ]
            }
        )
        return
    if not uses:
        typer.echo("No API keys." if staff is None else f"No API keys for {staff}.")
        return
    table = Table("key id", "staff", "created (UTC)", "last used (UTC)", "expires (UTC)", "state")
    for use in uses:
        table.add_row(
            use.key.key_id,
            use.staff_name,
            table_time(use.key.created_at),
            table_time(use.last_used_at, missing="never"),
            table_time(use.key.expires_at, missing="-"),
            service.key_state(use.key, now),
        )
    Console().print(table)


@app.command("revoke")
def revoke(
    key_id: Annotated[str, typer.Argument(metavar="KEY_ID", help="The key id shown at creation.")],
    as_json: JsonFlag = False,
) -> None:
    """Revoke a key; it fails on the next request."""
    with context.writing() as session:
        service.revoke_key(session, context.clock, actor=context.operator(), key_id=key_id)
    if as_json:
        emit_json({"key_id": key_id, "revoked": True})
    else:
        typer.echo(f"Revoked key {key_id}.")


@app.command("rotate-master", short_help="Re-wrap all data keys under a new master key.")
def rotate_master(as_json: JsonFlag = False) -> None:
    """Re-wrap all data keys under a new master key, without re-encrypting the data.

    Stop every Charter server that uses this key store first, and start them again after: a
    server still running with the old key can no longer open keys it has not cached, nor
    make new ones, and answers 503 (master_key_changed) until it is restarted; it never
    wraps a key under the old master key. With a key file, the new key replaces it; with
    CHARTER_MASTER_KEY, the new key is printed once and must be set before the next start.
    """
    settings = context.settings()
    key_file = settings.master_key_file if settings.master_key is None else None
    pending = pending_master_key_file(settings) if key_file is not None else None
    db = context.database()
    try:
        try:
            store = open_keystore(settings)
            old = master_key(settings)
        except StartupError as exc:
            fail(str(exc))
            raise  # unreachable: fail() exits
        try:
            if pending is not None and pending.exists():
                fail(
                    f"{pending} exists: another rotation is running, or one stopped before it "
                    "re-wrapped the keys (the store still opens with the current key); if no "
                    "rotation is running, remove it and run again"
                )
            # No rotation is under way: any left unfinished is done or abandoned by now.
            settle_rotations(db, context.clock, old, abandon=True)
            new = new_key()
            try:
                procedure = start_rotation(
                    db, context.clock, actor=context.operator(), old=old, new=new
                )
            except SQLAlchemyError:
                fail("the audit log could not record the rotation; nothing was changed")
            with progress_bar("Re-wrapping data keys", quiet=as_json) as report:
                count = _rewrap(store, new, pending, report)
        finally:
            store.engine.dispose()
        if key_file is not None and pending is not None:
            try:
                pending.replace(key_file)
            except OSError as exc:
                # The store opens with the pending key only now: say so, lest it be removed.
                fail(
                    f"the keys are re-wrapped under the new master key in {pending}, but it "
                    f"could not replace {key_file} ({exc.strerror or exc}); keep it: it is the "
                    "key that opens the store, and the next start of Charter puts it in place"
                )
            _sync_directory(key_file.parent)
        _report(key_file, encode_key(new), count, as_json=as_json)
        # Out before the outcome is recorded, which may wait for the database: with
        # CHARTER_MASTER_KEY, what is printed is the only copy of the key that opens the store.
        sys.stdout.flush()
        try:
            finish_rotation(db, context.clock, procedure, keys=count)
        except SQLAlchemyError:
            fail(
                "the master key was rotated, but the audit log could not record it yet; the "
                "next start of Charter records it"
            )
    finally:
        db.dispose()


def _rewrap(store: SqlKeyStore, new: bytes, pending: Path | None, report: Report | None) -> int:
    """Re-wrap the store under `new`, with `new` first written to `pending` if given.

    The new key is on disk before the re-wrap commits, so a crash at any point leaves a key
    file that opens the store: the old one before the commit, the pending one after it (the
    next start promotes it, see `boot.open_keystore`).
    """
    if pending is not None:
        try:
            _write_key_file(pending, new)
        except FileExistsError:
            fail(f"{pending} appeared meanwhile: another rotation is running")
            raise  # unreachable: fail() exits
    try:
        return store.rewrap(new, report)
    except (DecryptionFailed, SQLAlchemyError):
        if not _may_open(store.engine, new):
            if pending is not None:
                pending.unlink(missing_ok=True)
            fail(
                "the key store could not be re-wrapped (it changed meanwhile, or stopped "
                "answering); nothing was changed"
            )
        if pending is None:
            typer.echo(encode_key(new))
        where = f"{pending} is kept" if pending is not None else "the new key is printed above"
        fail(
            "the key store stopped answering during the re-wrap, which may have completed; "
            f"{where}, and is the key to use if the current one no longer opens the store"
        )
        raise  # unreachable: fail() exits


def _may_open(engine: Engine, key: bytes) -> bool:
    """False only if `key` certainly does not open the key store."""
    try:
        SqlKeyStore(engine, key)
    except MasterKeyMismatch:
        return False
    except SQLAlchemyError:
        return True
    return True


def _write_key_file(path: Path, key: bytes) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="ascii") as file:
        file.write(encode_key(key) + "\n")
        file.flush()
        os.fsync(file.fileno())
    _sync_directory(path.parent)


def _sync_directory(path: Path) -> None:
    # A new file or a rename survives a power loss only once its directory entry is on disk.
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _report(key_file: Path | None, new: str, count: int, *, as_json: bool) -> None:
    if key_file is not None:
        if as_json:
            emit_json({"keys_rewrapped": count, "master_key_file": str(key_file)})
        else:
            typer.echo(f"Re-wrapped {count} data keys under a new master key, now in {key_file}.")
            typer.echo(
                "The old key no longer opens the key store; keep a copy of the new one "
                "apart from the data."
            )
        return
    note = (
        "set CHARTER_MASTER_KEY to this key before Charter starts again; it is shown only "
        "this once, and the old key no longer opens the key store"
    )
    if as_json:
        emit_json({"keys_rewrapped": count, "master_key": new, "note": note})
    else:
        typer.echo(new)
        typer.echo(f"(re-wrapped {count} data keys; {note})", err=True)
