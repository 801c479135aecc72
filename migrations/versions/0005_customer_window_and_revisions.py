"""Conversations other services steer: when each customer last wrote (Meta's 24-hour customer
service window) and a turn counter on the per-customer lock row, and a revision on every
conversation (UpdateConversation's expected_revision).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("customers", sa.Column("last_inbound_at", sa.DateTime(timezone=True)))
    op.add_column(
        "customers",
        sa.Column("turns", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
    )
    op.add_column(
        "conversation_state",
        sa.Column("revision", sa.BigInteger(), server_default=sa.text("1"), nullable=False),
    )


def downgrade() -> None:
    with op.batch_alter_table("conversation_state") as table:
        table.drop_column("revision")
    with op.batch_alter_table("customers") as table:
        table.drop_column("turns")
        table.drop_column("last_inbound_at")
