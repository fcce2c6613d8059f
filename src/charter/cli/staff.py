"""`charter staff ...`: personnel and their roles."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from charter.cli import context
from charter.cli.output import emit_json, json_time
from charter.staff import service

app = typer.Typer(no_args_is_help=True)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for machines.")]
NameArg = Annotated[
    str, typer.Argument(metavar="NAME", help="The staff member's handle.", show_default=False)
]


@app.command("add")
def add(
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="A handle, e.g. alice or web-backend.")
    ],
    role: Annotated[
        str,
        typer.Option("--role", metavar="ROLE", help="A role from the policy's personnel section."),
    ],
    as_json: JsonFlag = False,
) -> None:
    """Add a staff member with a role."""
    policy = context.policy()
    with context.writing() as session:
        member = service.add_staff(
            session, context.clock, policy, actor=context.operator(), name=name, role=role
        )
        result = {"name": member.name, "role": member.role}
    if as_json:
        emit_json(result)
    else:
        typer.echo(f"Added {result['name']} ({result['role']}).")


@app.command("list")
def list_(as_json: JsonFlag = False) -> None:
    """List staff members, their roles and whether they are active."""
    with context.reading() as session:
        rows = [
            {
                "name": m.name,
                "role": m.role,
                "active": m.active,
                "created_at": json_time(m.created_at),
                "disabled_at": json_time(m.disabled_at),
            }
            for m in service.list_staff(session)
        ]
    if as_json:
        emit_json({"staff": rows})
        return
    table = Table("name", "role", "active", "since")
    for row in rows:
        table.add_row(
            str(row["name"]),
            str(row["role"]),
            "yes" if row["active"] else "no",
            str(row["created_at"])[:19],
        )
    Console().print(table)


@app.command("disable", short_help="Disable a staff member; their keys stop working.")
def disable(name: NameArg, as_json: JsonFlag = False) -> None:
    """Disable a staff member; their keys stop working on the next request."""
    with context.writing() as session:
        service.disable_staff(session, context.clock, actor=context.operator(), name=name)
    if as_json:
        emit_json({"name": name, "active": False})
    else:
        typer.echo(f"Disabled {name}.")


@app.command("enable", short_help="Enable a disabled staff member again.")
def enable(name: NameArg, as_json: JsonFlag = False) -> None:
    """Enable a disabled staff member again; their keys that are neither revoked nor expired
    work again on the next request."""
    now = context.clock.now()
    with context.writing() as session:
        service.enable_staff(session, context.clock, actor=context.operator(), name=name)
        working = [
            key.key_id
            for key in service.list_keys(session, name)
            if service.key_state(key, now) == "valid"
        ]
    if as_json:
        emit_json({"name": name, "active": True, "working_keys": working})
        return
    typer.echo(f"Enabled {name}.")
    if working:
        # Keys issued before the member was disabled work again: say which, so that an
        # operator who meant to give a fresh start revokes them.
        typer.echo(
            f"Their keys that work again: {', '.join(working)} (`charter keys revoke KEY_ID` "
            "to stop one).",
            err=True,
        )
