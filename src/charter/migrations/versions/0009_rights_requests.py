"""rights requests and their steps

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rights_requests",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=24), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("person_id", sa.String(length=32), nullable=True),
        sa.Column("email_index", sa.String(length=64), nullable=True),
        sa.Column("received_at", sa.String(length=27), nullable=False),
        sa.Column("confirm_by", sa.String(length=27), nullable=True),
        sa.Column("confirmed_at", sa.String(length=27), nullable=True),
        sa.Column("due_at", sa.String(length=27), nullable=False),
        sa.Column("verified_at", sa.String(length=27), nullable=True),
        sa.Column("verification", sa.String(length=32), nullable=True),
        sa.Column("extended_at", sa.String(length=27), nullable=True),
        sa.Column("extension_reason", sa.String(length=500), nullable=True),
        sa.Column("closed_at", sa.String(length=27), nullable=True),
        sa.Column("response", sa.String(length=500), nullable=True),
        sa.Column("denial_basis", sa.String(length=500), nullable=True),
        sa.Column("report_year", sa.Integer(), nullable=True),
        sa.Column("source_key", sa.String(length=300), nullable=True),
        sa.Column("reply_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("source_key"),
    )
    op.create_index("ix_rights_requests_person_id", "rights_requests", ["person_id"])
    op.create_index("ix_rights_requests_email_index", "rights_requests", ["email_index"])
    op.create_index("ix_rights_requests_received_at", "rights_requests", ["received_at"])
    op.create_index("ix_rights_requests_open_due", "rights_requests", ["state", "due_at"])
    op.create_table(
        "rights_request_steps",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("request_id", sa.String(length=32), nullable=False),
        sa.Column("at", sa.String(length=27), nullable=False),
        sa.Column("from_state", sa.String(length=24), nullable=True),
        sa.Column("to_state", sa.String(length=24), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(["request_id"], ["rights_requests.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_rights_request_steps_request_id", "rights_request_steps", ["request_id"])


def downgrade() -> None:
    op.drop_index("ix_rights_request_steps_request_id", table_name="rights_request_steps")
    op.drop_table("rights_request_steps")
    op.drop_index("ix_rights_requests_open_due", table_name="rights_requests")
    op.drop_index("ix_rights_requests_received_at", table_name="rights_requests")
    op.drop_index("ix_rights_requests_email_index", table_name="rights_requests")
    op.drop_index("ix_rights_requests_person_id", table_name="rights_requests")
    op.drop_table("rights_requests")
