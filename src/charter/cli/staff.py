"""`charter staff ...`: personnel and their roles."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from charter.cli import context
from charter.cli.output import emit_json
from charter.staff import service

app = typer.Typer(no_args_is_help=True)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for machines.")]


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="A handle, e.g. alice or web-backend.")],
    role: Annotated[
        str, typer.Option("--role", help="A role from the policy's personnel section.")
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
    with context.database().reading() as session:
        rows = [
            {
                "name": m.name,
                "role": m.role,
                "active": m.active,
                "created_at": m.created_at.isoformat(),
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


@app.command("disable")
def disable(name: str, as_json: JsonFlag = False) -> None:
    """Disable a staff member; their keys stop working on the next request."""
    with context.writing() as session:
        service.disable_staff(session, context.clock, actor=context.operator(), name=name)
    if as_json:
        emit_json({"name": name, "active": False})
    else:
        typer.echo(f"Disabled {name}.")
