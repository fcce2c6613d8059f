"""disclosure exclusions and selections; the person a message is written to

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "disclosure_exclusions",
        sa.Column("disclosure_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.String(length=32), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["disclosure_id"], ["disclosures.id"]),
        sa.PrimaryKeyConstraint("disclosure_id", "position"),
    )
    op.create_table(
        "disclosure_selections",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.String(length=27), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("used_by", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "disclosure_selected_people",
        sa.Column("selection_id", sa.String(length=32), nullable=False),
        sa.Column("person_id", sa.String(length=32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["selection_id"], ["disclosure_selections.id"]),
        sa.PrimaryKeyConstraint("selection_id", "person_id"),
    )
    op.create_index(
        "ix_disclosure_selected_people_order",
        "disclosure_selected_people",
        ["selection_id", "position"],
    )
    # Plain ALTERs, no batch: on SQLite a batch rebuilds the table, and dropping the old one
    # breaks the foreign keys of the ledger's rows that point at it.
    op.add_column(
        "disclosures",
        sa.Column("codes", sa.JSON(), nullable=False, server_default=sa.text("'{}'")),
    )
    op.add_column("disclosures", sa.Column("selection_id", sa.String(length=32), nullable=True))
    _move_exclusions_to_their_table()
    op.drop_column("disclosures", "exclusions")
    op.add_column("mail_outbox", sa.Column("person_id", sa.String(length=32), nullable=True))
    op.create_index("ix_mail_outbox_person_id", "mail_outbox", ["person_id"])


def _move_exclusions_to_their_table() -> None:
    connection = op.get_bind()
    rows = connection.execute(sa.text("SELECT id, exclusions FROM disclosures")).all()
    for disclosure_id, stored in rows:
        pairs = json.loads(stored) if isinstance(stored, str) else stored
        codes: dict[str, int] = {}
        for position, (person_id, code) in enumerate(pairs):
            codes[code] = codes.get(code, 0) + 1
            connection.execute(
                sa.text(
                    "INSERT INTO disclosure_exclusions (disclosure_id, position, person_id, code) "
                    "VALUES (:d, :p, :person, :code)"
                ),
                {"d": disclosure_id, "p": position, "person": person_id, "code": code},
            )
        connection.execute(
            sa.text("UPDATE disclosures SET codes = :codes WHERE id = :d"),
            {"codes": json.dumps(dict(sorted(codes.items()))), "d": disclosure_id},
        )


def downgrade() -> None:
    op.drop_index("ix_mail_outbox_person_id", table_name="mail_outbox")
    op.drop_column("mail_outbox", "person_id")
    op.add_column(
        "disclosures",
        sa.Column("exclusions", sa.JSON(), nullable=False, server_default=sa.text("'[]'")),
    )
    connection = op.get_bind()
    for (disclosure_id,) in connection.execute(sa.text("SELECT id FROM disclosures")).all():
        pairs = connection.execute(
            sa.text(
                "SELECT person_id, code FROM disclosure_exclusions WHERE disclosure_id = :d "
                "ORDER BY position"
            ),
            {"d": disclosure_id},
        ).all()
        connection.execute(
            sa.text("UPDATE disclosures SET exclusions = :e WHERE id = :d"),
            {"e": json.dumps([list(pair) for pair in pairs]), "d": disclosure_id},
        )
    op.drop_column("disclosures", "selection_id")
    op.drop_column("disclosures", "codes")
    op.drop_index("ix_disclosure_selected_people_order", table_name="disclosure_selected_people")
    op.drop_table("disclosure_selected_people")
    op.drop_table("disclosure_selections")
    op.drop_table("disclosure_exclusions")
