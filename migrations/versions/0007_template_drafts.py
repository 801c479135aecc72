"""Drafts: workflow_templates.live_version (the version customers get; NULL while a template is
only a draft) and workflow_template_versions.is_draft (saved, never live).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("workflow_templates") as batch:
        batch.add_column(sa.Column("live_version", sa.Integer(), nullable=True))
    op.execute("UPDATE workflow_templates SET live_version = version")
    with op.batch_alter_table("workflow_template_versions") as batch:
        batch.add_column(
            sa.Column("is_draft", sa.Boolean(), server_default=sa.text("false"), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("workflow_template_versions") as batch:
        batch.drop_column("is_draft")
    with op.batch_alter_table("workflow_templates") as batch:
        batch.drop_column("live_version")
