"""handoff: a conversation handed to people (paused), its queue, and when the bot takes it back.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("conversation_state") as batch:
        batch.add_column(sa.Column("handoff_queue", sa.String(64), nullable=True))
        batch.add_column(sa.Column("handoff", Json, nullable=True))
        batch.add_column(sa.Column("handoff_resume_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("handoff_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_index("ix_conversation_state_handoff_resume_at", ["handoff_resume_at"])
        batch.create_index("ix_conversation_state_handoff_queue", ["handoff_queue"])


def downgrade() -> None:
    with op.batch_alter_table("conversation_state") as batch:
        batch.drop_index("ix_conversation_state_handoff_queue")
        batch.drop_index("ix_conversation_state_handoff_resume_at")
        batch.drop_column("handoff_at")
        batch.drop_column("handoff_resume_at")
        batch.drop_column("handoff")
        batch.drop_column("handoff_queue")
