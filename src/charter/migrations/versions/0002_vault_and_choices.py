"""vault and choices

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 16:06:25.170243
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "choice_history",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.String(length=32), nullable=False),
        sa.Column("topic", sa.String(length=80), nullable=False),
        sa.Column("granted", sa.Boolean(), nullable=False),
        sa.Column("method", sa.String(length=32), nullable=False),
        sa.Column("policy_version", sa.String(length=32), nullable=False),
        sa.Column("at", sa.String(length=27), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("choice_history", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_choice_history_person_id"), ["person_id"], unique=False
        )

    op.create_table(
        "choices",
        sa.Column("person_id", sa.String(length=32), nullable=False),
        sa.Column("topic", sa.String(length=80), nullable=False),
        sa.Column("granted", sa.Boolean(), nullable=False),
        sa.Column("method", sa.String(length=32), nullable=False),
        sa.Column("policy_version", sa.String(length=32), nullable=False),
        sa.Column("at", sa.String(length=27), nullable=False),
        sa.PrimaryKeyConstraint("person_id", "topic"),
    )
    op.create_table(
        "event_batches",
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("received_at", sa.String(length=27), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_table(
        "events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("uid", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("person_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("collection_point", sa.String(length=64), nullable=False),
        sa.Column("policy_version", sa.String(length=32), nullable=False),
        sa.Column("collected_at", sa.String(length=27), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_events_person_id"), ["person_id"], unique=False)

    op.create_table(
        "people",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=True),
        sa.Column("email_index", sa.String(length=64), nullable=True),
        sa.Column("merged_into", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.String(length=27), nullable=False),
        sa.Column("erased_at", sa.String(length=27), nullable=True),
        sa.Column("objected_at", sa.String(length=27), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("people", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_people_customer_id"), ["customer_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_people_email_index"), ["email_index"], unique=False)
        batch_op.create_index(batch_op.f("ix_people_merged_into"), ["merged_into"], unique=False)

    op.create_table(
        "records",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column("person_id", sa.String(length=32), nullable=False),
        sa.Column("submission_id", sa.String(length=32), nullable=False),
        sa.Column("collection_point", sa.String(length=64), nullable=False),
        sa.Column("field", sa.String(length=64), nullable=False),
        sa.Column("category", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("source_name", sa.String(length=64), nullable=True),
        sa.Column("policy_version", sa.String(length=32), nullable=False),
        sa.Column("collected_at", sa.String(length=27), nullable=False),
        sa.Column("published", sa.Boolean(), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("records", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_records_person_id"), ["person_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_records_submission_id"), ["submission_id"], unique=False
        )

    op.create_table(
        "visitor_ids",
        sa.Column("index", sa.String(length=64), nullable=False),
        sa.Column("person_id", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["people.id"],
        ),
        sa.PrimaryKeyConstraint("index"),
    )
    with op.batch_alter_table("visitor_ids", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_visitor_ids_person_id"), ["person_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("visitor_ids", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_visitor_ids_person_id"))

    op.drop_table("visitor_ids")
    with op.batch_alter_table("records", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_records_submission_id"))
        batch_op.drop_index(batch_op.f("ix_records_person_id"))

    op.drop_table("records")
    with op.batch_alter_table("people", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_people_merged_into"))
        batch_op.drop_index(batch_op.f("ix_people_email_index"))
        batch_op.drop_index(batch_op.f("ix_people_customer_id"))

    op.drop_table("people")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_events_person_id"))

    op.drop_table("events")
    op.drop_table("event_batches")
    op.drop_table("choices")
    with op.batch_alter_table("choice_history", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_choice_history_person_id"))

    op.drop_table("choice_history")
