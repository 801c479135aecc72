"""event_deliveries: each webhook endpoint's durable cursor and its delivery lease;
event_dead_letters: the events an endpoint gave up on.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "event_deliveries",
        sa.Column("endpoint", sa.String(128), nullable=False),
        sa.Column("cursor", sa.BigInteger(), nullable=False),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("endpoint", name="pk_event_deliveries"),
    )
    op.create_table(
        "event_dead_letters",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("endpoint", sa.String(128), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_event_dead_letters"),
    )
    op.create_index("ix_event_dead_letters_endpoint", "event_dead_letters", ["endpoint", "id"])


def downgrade() -> None:
    op.drop_index("ix_event_dead_letters_endpoint", table_name="event_dead_letters")
    op.drop_table("event_dead_letters")
    op.drop_table("event_deliveries")
