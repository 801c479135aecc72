"""Timers: when a conversation's step timer (its `timeout`) is next due, and how many reminders
it has sent. Written with the conversation by the turn's own statement; the sweep finds due rows
through the partial index (conversations without a timer are not in it).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("conversation_state") as batch:
        batch.add_column(sa.Column("silence_due_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column("reminders", sa.Integer(), nullable=False, server_default=sa.text("0"))
        )
    op.create_index(
        "ix_conversation_state_silence_due_at",
        "conversation_state",
        ["silence_due_at"],
        postgresql_where=sa.text("silence_due_at IS NOT NULL"),
        sqlite_where=sa.text("silence_due_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_conversation_state_silence_due_at", table_name="conversation_state")
    with op.batch_alter_table("conversation_state") as batch:
        batch.drop_column("reminders")
        batch.drop_column("silence_due_at")
