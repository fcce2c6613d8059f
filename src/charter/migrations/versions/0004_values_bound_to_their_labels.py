"""values bound to their labels

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from charter.db import utc_text

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("seal_version", sa.Integer(), server_default="2", nullable=False)
        )

    with op.batch_alter_table("records", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("seal_version", sa.Integer(), server_default="2", nullable=False)
        )

    # Every value stored so far is bound to its row and person only. The key store is out of
    # a migration's reach: a `reseal` procedure is recorded, and the next start seals them
    # again with their labels (charter.vault.reseal).
    connection = op.get_bind()
    old = 0
    for table in ("records", "events"):
        old += connection.execute(
            sa.text(f"UPDATE {table} SET seal_version = 1")  # noqa: S608 - our table names
        ).rowcount
    if old:
        connection.execute(
            sa.text(
                "INSERT INTO procedures (id, kind, subject, state, actor, started_at, details) "
                "VALUES (:id, 'reseal', 'vault:values', 'started', 'migration', :at, '{}')"
            ),
            {"id": secrets.token_hex(16), "at": utc_text(dt.datetime.now(dt.UTC))},
        )


def downgrade() -> None:
    with op.batch_alter_table("records", schema=None) as batch_op:
        batch_op.drop_column("seal_version")

    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_column("seal_version")
