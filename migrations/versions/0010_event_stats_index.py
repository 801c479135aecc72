"""event stats index: GetFlowStats reads one template's events in a time range.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_events_template_name_created_at", "events", ["template_name", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_events_template_name_created_at", table_name="events")
