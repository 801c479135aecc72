"""conversation_state's handoff indexes hold only customers handed off (partial, IS NOT NULL):
every turn's save moves the conversation's entry in each index whose column it changes or not
(the row cannot be updated in place while indexed columns change), and these two columns are
NULL for nearly every conversation. Every query on them asks for non-NULL values.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = ("handoff_queue", "handoff_resume_at")


def upgrade() -> None:
    for column in _COLUMNS:
        name = f"ix_conversation_state_{column}"
        op.drop_index(name, table_name="conversation_state")
        op.create_index(
            name,
            "conversation_state",
            [column],
            postgresql_where=sa.text(f"{column} IS NOT NULL"),
            sqlite_where=sa.text(f"{column} IS NOT NULL"),
        )


def downgrade() -> None:
    for column in _COLUMNS:
        name = f"ix_conversation_state_{column}"
        op.drop_index(name, table_name="conversation_state")
        op.create_index(name, "conversation_state", [column])
