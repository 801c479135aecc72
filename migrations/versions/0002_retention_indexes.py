"""Indexes for the retention sweep: results by age, finished outbox messages by age.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_flow_results_created_at", "flow_results", ["created_at"])
    op.create_index("ix_outbox_state_updated_at", "outbox", ["state", "updated_at"])


def downgrade() -> None:
    op.drop_index("ix_outbox_state_updated_at", table_name="outbox")
    op.drop_index("ix_flow_results_created_at", table_name="flow_results")
