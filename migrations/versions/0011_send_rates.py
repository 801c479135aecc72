"""Meta's per-number send rate, shared by every gateway: one row per business number holding the
time its next send slot starts (seconds since the epoch), granted by FlowService.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "send_rates",
        sa.Column("phone_number_id", sa.String(length=64), nullable=False),
        sa.Column("next_slot_at", sa.Float(precision=53), nullable=False),
        sa.PrimaryKeyConstraint("phone_number_id", name=op.f("pk_send_rates")),
    )


def downgrade() -> None:
    op.drop_table("send_rates")
