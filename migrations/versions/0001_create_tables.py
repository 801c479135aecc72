"""Create the tables: templates, versions, customers, conversations, dedupe, outbox, results.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def Timestamp(name: str, *, nullable: bool = False, now: bool = False) -> sa.Column:  # noqa: N802
    default = sa.func.now() if now else None
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable, server_default=default)


def upgrade() -> None:
    op.create_table(
        "workflow_templates",
        sa.Column("id", Id, primary_key=True),
        sa.Column("template_name", sa.String(64), nullable=False),
        sa.Column("template_type", sa.String(16), nullable=False),
        sa.Column("trigger_keywords", Json, nullable=False),
        sa.Column("menu_structure", Json, nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        Timestamp("created_at", now=True),
        Timestamp("updated_at", now=True),
        sa.UniqueConstraint("template_name"),
    )
    op.create_table(
        "workflow_template_versions",
        sa.Column("id", Id, primary_key=True),
        sa.Column(
            "template_id",
            Id,
            sa.ForeignKey("workflow_templates.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("template_name", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("template_type", sa.String(16), nullable=False),
        sa.Column("trigger_keywords", Json, nullable=False),
        sa.Column("menu_structure", Json, nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        Timestamp("created_at", now=True),
        sa.UniqueConstraint("template_name", "version"),
    )
    op.create_table(
        "customers",
        sa.Column("phone_number_id", sa.String(64), primary_key=True),
        sa.Column("phone_number", sa.String(32), primary_key=True),
        Timestamp("created_at", now=True),
    )
    op.create_table(
        "conversation_state",
        sa.Column("id", Id, primary_key=True),
        sa.Column("phone_number_id", sa.String(64), nullable=False),
        sa.Column("phone_number", sa.String(32), nullable=False),
        sa.Column("conversation_flow", sa.String(64), nullable=False),
        sa.Column("template_version", sa.Integer(), nullable=False),
        sa.Column("current_step", sa.String(64), nullable=False),
        sa.Column("context", Json, nullable=False),
        sa.Column("history", Json, nullable=False),
        Timestamp("last_interaction"),
        Timestamp("expires_at"),
        Timestamp("created_at", now=True),
        sa.UniqueConstraint("phone_number_id", "phone_number"),
        sa.Index("ix_conversation_state_expires_at", "expires_at"),
        sa.Index("ix_conversation_state_flow_step", "conversation_flow", "current_step"),
    )
    op.create_table(
        "processed_messages",
        sa.Column("message_id", sa.String(255), primary_key=True),
        sa.Column("phone_number_id", sa.String(64), nullable=False),
        sa.Column("phone_number", sa.String(32), nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("outbox_ids", Json, nullable=False),
        Timestamp("processed_at"),
        sa.Index("ix_processed_messages_processed_at", "processed_at"),
    )
    op.create_table(
        "outbox",
        sa.Column("id", Id, primary_key=True),
        sa.Column("phone_number_id", sa.String(64), nullable=False),
        sa.Column("phone_number", sa.String(32), nullable=False),
        sa.Column("source_id", sa.String(255), nullable=False),
        sa.Column("body_json", sa.Text(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        Timestamp("next_attempt_at"),
        sa.Column("lease_owner", sa.String(200)),
        Timestamp("lease_expires_at", nullable=True),
        sa.Column("wa_message_id", sa.String(255)),
        sa.Column("delivery_status", sa.String(16)),
        sa.Column("error_code", sa.Integer()),
        sa.Column("error_title", sa.Text()),
        sa.Column("error_details", sa.Text()),
        Timestamp("created_at"),
        Timestamp("updated_at"),
        sa.UniqueConstraint("wa_message_id"),
        sa.Index("ix_outbox_lane", "phone_number_id", "phone_number", "state", "id"),
        sa.Index("ix_outbox_state_next_attempt_at", "state", "next_attempt_at"),
    )
    op.create_table(
        "flow_results",
        sa.Column("id", Id, primary_key=True),
        sa.Column("reference", sa.String(16), nullable=False),
        sa.Column("template_name", sa.String(64), nullable=False),
        sa.Column("template_version", sa.Integer(), nullable=False),
        sa.Column("phone_number_id", sa.String(64), nullable=False),
        sa.Column("phone_number", sa.String(32), nullable=False),
        sa.Column("context", Json, nullable=False),
        Timestamp("created_at"),
        sa.UniqueConstraint("reference"),
        sa.Index("ix_flow_results_customer", "phone_number_id", "phone_number", "id"),
        sa.Index("ix_flow_results_template_name", "template_name"),
    )


def downgrade() -> None:
    for table in (
        "flow_results",
        "outbox",
        "processed_messages",
        "conversation_state",
        "customers",
        "workflow_template_versions",
        "workflow_templates",
    ):
        op.drop_table(table)
