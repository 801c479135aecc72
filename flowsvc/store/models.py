"""The tables. Seed names and columns are kept; JSONB on PostgreSQL, JSON on SQLite."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Json = JSON().with_variant(JSONB(), "postgresql")
# SQLite only auto-increments an INTEGER PRIMARY KEY.
Id = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both databases (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: menuflow stores UTC-aware datetimes only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: Json, list[Any]: Json}


class WorkflowTemplate(Base):
    """A template's head: its name, latest version (draft or not) and the version customers get."""

    __tablename__ = "workflow_templates"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    template_name: Mapped[str] = mapped_column(String(64), unique=True)
    template_type: Mapped[str] = mapped_column(String(16))
    trigger_keywords: Mapped[list[Any]]
    menu_structure: Mapped[dict[str, Any]]
    is_active: Mapped[bool] = mapped_column(Boolean)
    version: Mapped[int]
    # The version keywords, starts and other templates' targets use; None while the template
    # has only drafts. Running conversations stay on the version they started on.
    live_version: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


class WorkflowTemplateVersion(Base):
    """One immutable version of a template; conversations run on a version, never on the head."""

    __tablename__ = "workflow_template_versions"
    __table_args__ = (UniqueConstraint("template_name", "version"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    template_id: Mapped[int] = mapped_column(
        Id, ForeignKey("workflow_templates.id", ondelete="CASCADE"), index=True
    )
    template_name: Mapped[str] = mapped_column(String(64))
    version: Mapped[int]
    template_type: Mapped[str] = mapped_column(String(16))
    trigger_keywords: Mapped[list[Any]]
    menu_structure: Mapped[dict[str, Any]]
    is_active: Mapped[bool] = mapped_column(Boolean)
    # Saved (and validated) but never live: customers cannot reach it, the sandbox can.
    is_draft: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class Customer(Base):
    """A customer of one business number: the row every HandleMessage and outbox claim locks, so
    that one customer's messages are handled, and their replies sent, one at a time across all
    replicas."""

    __tablename__ = "customers"

    phone_number_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    phone_number: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    # When the customer last wrote (their latest message's own time): Meta's 24-hour customer
    # service window, in which free-form messages may be sent, runs from it. Set by the lock
    # upsert of message turns, so it costs no statement of its own.
    last_inbound_at: Mapped[datetime | None]
    # Counts the turns that took this lock: a conversation's revision is the count at its last
    # write, so revisions never repeat for a customer, not even across conversations.
    turns: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    # When the customer's last conversation expired, if the sweep deleted it before they wrote
    # again: their next message is told why it starts over. Kept FLOWSVC_EXPIRY_NOTICE_DAYS.
    expired_at: Mapped[datetime | None] = mapped_column(index=True)
    # The language the customer chose (a language menu, a language keyword, SetLanguage); None:
    # not chosen, so their calling code's or each template's own. Written by a turn only when
    # it changes.
    language: Mapped[str | None] = mapped_column(String(16))


class ConversationState(Base):
    """A customer's active conversation: one per customer and business number."""

    __tablename__ = "conversation_state"
    __table_args__ = (
        UniqueConstraint("phone_number_id", "phone_number"),
        Index("ix_conversation_state_flow_step", "conversation_flow", "current_step"),
        Index(  # the timer sweep: only conversations with a timer armed
            "ix_conversation_state_silence_due_at",
            "silence_due_at",
            postgresql_where=text("silence_due_at IS NOT NULL"),
            sqlite_where=text("silence_due_at IS NOT NULL"),
        ),
        # Handoffs (queues, ListConversations by queue, the resume sweep): only customers handed
        # off, so that a turn's save, which moves every other index's entry, skips these two.
        Index(
            "ix_conversation_state_handoff_queue",
            "handoff_queue",
            postgresql_where=text("handoff_queue IS NOT NULL"),
            sqlite_where=text("handoff_queue IS NOT NULL"),
        ),
        Index(
            "ix_conversation_state_handoff_resume_at",
            "handoff_resume_at",
            postgresql_where=text("handoff_resume_at IS NOT NULL"),
            sqlite_where=text("handoff_resume_at IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    phone_number_id: Mapped[str] = mapped_column(String(64))
    phone_number: Mapped[str] = mapped_column(String(32))
    conversation_flow: Mapped[str] = mapped_column(String(64))
    template_version: Mapped[int]
    current_step: Mapped[str] = mapped_column(String(64))
    context: Mapped[dict[str, Any]]
    history: Mapped[list[Any]]
    last_interaction: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    # Changes with every write of the conversation (UpdateConversation's expected_revision).
    revision: Mapped[int] = mapped_column(BigInteger, server_default=text("1"))
    # Set while the customer is handed off to people (the bot is paused): the queue, the details
    # (reason, priority, since, until, resume text) and when the bot takes the customer back on
    # its own. A turn's save leaves them as they are (store.handoffs writes them).
    handoff_queue: Mapped[str | None] = mapped_column(String(64))
    handoff: Mapped[dict[str, Any] | None]
    handoff_resume_at: Mapped[datetime | None]
    handoff_at: Mapped[datetime | None]  # when the customer was handed off
    # The step's timer (engine.timers): when the customer's silence is next acted on, and how
    # many reminders were sent since they last wrote. Written by every save of the turn.
    silence_due_at: Mapped[datetime | None]
    reminders: Mapped[int] = mapped_column(server_default=text("0"))


class ProcessedMessage(Base):
    """An inbound message id already handled, with what handling it produced (dedupe)."""

    __tablename__ = "processed_messages"

    message_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    phone_number_id: Mapped[str] = mapped_column(String(64))
    phone_number: Mapped[str] = mapped_column(String(32))
    outcome: Mapped[str] = mapped_column(String(32))
    outbox_ids: Mapped[list[Any]]
    processed_at: Mapped[datetime] = mapped_column(index=True)


class OutboxMessage(Base):
    """A Graph API request to send, with its delivery state; committed with the state change."""

    __tablename__ = "outbox"
    __table_args__ = (
        # On PostgreSQL the outbox's indexes are partial, so that the one index that can answer
        # "what does this customer still wait for" is the customer's: an index led by `state`
        # would make that check (once per message) scan every customer's pending rows whenever
        # the planner thinks pending rows are rare. The pump's scan of due messages uses
        # ix_outbox_lane there too; SQLite (bound parameters cannot match a partial index) keeps
        # whole indexes and the one for due messages.
        Index(
            "ix_outbox_lane",
            "phone_number_id",
            "phone_number",
            "state",
            "id",
            postgresql_where=text("state = 'pending'"),
        ),
        Index(
            "ix_outbox_state_next_attempt_at",
            "state",
            "next_attempt_at",
            info={"dialects": ("sqlite",)},  # migrations/env.py compares it only there
        ).ddl_if(dialect="sqlite"),
        Index(  # the retention sweep
            "ix_outbox_state_updated_at",
            "state",
            "updated_at",
            postgresql_where=text("state IN ('sent', 'failed')"),
        ),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    phone_number_id: Mapped[str] = mapped_column(String(64))
    phone_number: Mapped[str] = mapped_column(String(32))
    source_id: Mapped[str] = mapped_column(String(255))
    body_json: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime]
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[datetime | None]
    wa_message_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    delivery_status: Mapped[str | None] = mapped_column(String(16))
    error_code: Mapped[int | None]
    error_title: Mapped[str | None] = mapped_column(Text)
    error_details: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class QueuedCall(Base):
    """A call to the business's HTTP API that a call step queued in its turn's transaction; the
    gateway claims it with a lease (each claim counts an attempt) and hands its result back."""

    __tablename__ = "calls"
    __table_args__ = (
        Index("ix_calls_state_id", "state", "id"),  # the claim: pending calls, oldest first
        Index("ix_calls_customer", "phone_number_id", "phone_number", "state"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    phone_number_id: Mapped[str] = mapped_column(String(64))
    phone_number: Mapped[str] = mapped_column(String(32))
    flow: Mapped[str] = mapped_column(String(64))
    step: Mapped[str] = mapped_column(String(64))
    endpoint: Mapped[str] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(Text)
    body_json: Mapped[str] = mapped_column(Text)
    timeout_seconds: Mapped[float] = mapped_column(Float(precision=53))
    state: Mapped[str] = mapped_column(String(16))  # pending, done, superseded
    attempts: Mapped[int] = mapped_column(default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class FlowResult(Base):
    """What a completed flow produced (an order), with a reference the customer can quote."""

    __tablename__ = "flow_results"
    __table_args__ = (
        Index("ix_flow_results_customer", "phone_number_id", "phone_number", "id"),
        Index("ix_flow_results_created_at", "created_at"),  # the retention sweep
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    reference: Mapped[str] = mapped_column(String(16), unique=True)
    template_name: Mapped[str] = mapped_column(String(64), index=True)
    template_version: Mapped[int]
    phone_number_id: Mapped[str] = mapped_column(String(64))
    phone_number: Mapped[str] = mapped_column(String(32))
    context: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


class SendRate(Base):
    """Meta's per-number send rate across the deployment: when the number's next send slot starts
    (a token bucket kept as its theoretical arrival time, epoch seconds; see store/send_rates)."""

    __tablename__ = "send_rates"

    phone_number_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    next_slot_at: Mapped[float] = mapped_column(Float(precision=53))


class Event(Base):
    """Something that happened (a conversation started, a message delivered), written in the same
    transaction as the change it describes. Ids are given at commit, in commit order (see
    store.events), so a consumer resuming after an id misses nothing."""

    __tablename__ = "events"
    __table_args__ = (
        # GetFlowStats: one template's events in a time range.
        Index("ix_events_template_name_created_at", "template_name", "created_at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=False)
    type: Mapped[str] = mapped_column(String(32))
    phone_number_id: Mapped[str] = mapped_column(String(64))
    phone_number: Mapped[str] = mapped_column(String(32))
    template_name: Mapped[str] = mapped_column(String(64))
    template_version: Mapped[int]
    payload: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(index=True)  # the retention sweep


class EventCounter(Base):
    """The one row that numbers events: taken as a transaction's last write, so ids are given in
    commit order; and how far retention has deleted them (a resume from before is refused)."""

    __tablename__ = "event_counter"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_id: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    purged_through: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))


class EventDelivery(Base):
    """A webhook endpoint's delivery: the cursor (every event up to it was delivered or given up
    on), moved only after the endpoint answered, and the lease of the one gateway delivering it."""

    __tablename__ = "event_deliveries"

    endpoint: Mapped[str] = mapped_column(String(128), primary_key=True)
    cursor: Mapped[int] = mapped_column(BigInteger)
    owner: Mapped[str] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class EventDeadLetter(Base):
    """An event an endpoint gave up on (a permanent refusal, or retries past its deadline)."""

    __tablename__ = "event_dead_letters"
    __table_args__ = (Index("ix_event_dead_letters_endpoint", "endpoint", "id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    endpoint: Mapped[str] = mapped_column(String(128))
    event_id: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(Text)
    http_status: Mapped[int]
    created_at: Mapped[datetime]
