"""disclosure ledger

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "disclosures",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.String(length=27), nullable=False),
        sa.Column("recipient", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.String(length=64), nullable=False),
        sa.Column("categories", sa.JSON(), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("ground", sa.String(length=64), nullable=True),
        sa.Column("legal_process", sa.String(length=200), nullable=True),
        sa.Column("approver_id", sa.Integer(), nullable=True),
        sa.Column("requester_id", sa.Integer(), nullable=False),
        sa.Column("requester", sa.String(length=200), nullable=False),
        sa.Column("policy_version", sa.String(length=32), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("requested", sa.Integer(), nullable=False),
        sa.Column("disclosed", sa.Integer(), nullable=False),
        sa.Column("excluded", sa.Integer(), nullable=False),
        sa.Column("exclusions", sa.JSON(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=128), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("idempotency_key"),
    )
    op.create_index("ix_disclosures_at", "disclosures", ["at"])
    op.create_index("ix_disclosures_recipient", "disclosures", ["recipient"])
    op.create_index("ix_disclosures_purpose", "disclosures", ["purpose"])
    op.create_table(
        "disclosed_people",
        sa.Column("disclosure_id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.String(length=32), nullable=False),
        sa.Column("shine_the_light", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["disclosure_id"], ["disclosures.id"]),
        sa.PrimaryKeyConstraint("disclosure_id", "person_id"),
    )
    op.create_index("ix_disclosed_people_person_id", "disclosed_people", ["person_id"])


def downgrade() -> None:
    op.drop_index("ix_disclosed_people_person_id", table_name="disclosed_people")
    op.drop_table("disclosed_people")
    op.drop_index("ix_disclosures_purpose", table_name="disclosures")
    op.drop_index("ix_disclosures_recipient", table_name="disclosures")
    op.drop_index("ix_disclosures_at", table_name="disclosures")
    op.drop_table("disclosures")
