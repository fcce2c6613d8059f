"""consent receipts, procedures

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "procedures",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("started_at", sa.String(length=27), nullable=False),
        sa.Column("finished_at", sa.String(length=27), nullable=True),
        sa.Column("details", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("procedures", schema=None) as batch_op:
        batch_op.create_index("ix_procedures_kind_state", ["kind", "state"], unique=False)
        batch_op.create_index(batch_op.f("ix_procedures_subject"), ["subject"], unique=False)

    op.create_table(
        "used_consent_receipts",
        sa.Column("id", sa.String(length=24), nullable=False),
        sa.Column("used_at", sa.String(length=27), nullable=False),
        sa.Column("expires_at", sa.String(length=27), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("used_consent_receipts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_used_consent_receipts_expires_at"), ["expires_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("used_consent_receipts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_used_consent_receipts_expires_at"))

    op.drop_table("used_consent_receipts")
    with op.batch_alter_table("procedures", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_procedures_subject"))
        batch_op.drop_index("ix_procedures_kind_state")

    op.drop_table("procedures")
