"""PostgreSQL: the outbox's indexes are partial, so the per-customer pending check can use only
the customer's index.

With `state`-led indexes holding every row, the planner could answer HandleMessage's "does this
customer have replies waiting" through one of them whenever its statistics said pending rows were
rare, scanning every customer's pending rows on each message. Now ix_outbox_lane holds only
pending rows (it also serves the pump's scan of due messages), the retention index only finished
ones, and the due-messages index is gone. SQLite keeps whole indexes: a partial index cannot match
a query's bound parameters there.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PENDING = sa.text("state = 'pending'")
FINISHED = sa.text("state IN ('sent', 'failed')")


def _postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    if not _postgres():
        return
    op.drop_index("ix_outbox_lane", table_name="outbox")
    op.create_index(
        "ix_outbox_lane",
        "outbox",
        ["phone_number_id", "phone_number", "state", "id"],
        postgresql_where=PENDING,
    )
    op.drop_index("ix_outbox_state_updated_at", table_name="outbox")
    op.create_index(
        "ix_outbox_state_updated_at", "outbox", ["state", "updated_at"], postgresql_where=FINISHED
    )
    op.drop_index("ix_outbox_state_next_attempt_at", table_name="outbox")


def downgrade() -> None:
    if not _postgres():
        return
    op.create_index("ix_outbox_state_next_attempt_at", "outbox", ["state", "next_attempt_at"])
    op.drop_index("ix_outbox_state_updated_at", table_name="outbox")
    op.create_index("ix_outbox_state_updated_at", "outbox", ["state", "updated_at"])
    op.drop_index("ix_outbox_lane", table_name="outbox")
    op.create_index("ix_outbox_lane", "outbox", ["phone_number_id", "phone_number", "state", "id"])
