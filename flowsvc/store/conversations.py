"""conversation_state rows outside a turn: read, list, delete (turns write them: store.turns)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from flowsvc.store.db import affected_rows
from flowsvc.store.models import ConversationState


def get(session: Session, phone_number_id: str, phone_number: str) -> ConversationState | None:
    return session.scalar(
        select(ConversationState).where(
            ConversationState.phone_number_id == phone_number_id,
            ConversationState.phone_number == phone_number,
        )
    )


def page(
    session: Session,
    *,
    now: datetime,
    flow: str,
    step: str,
    phone_number_id: str,
    after_id: int | None,
    limit: int,
    handed_off: bool = False,
    queue: str = "",
) -> list[ConversationState]:
    """Unexpired conversations in id order, after `after_id`; empty filters match everything."""
    query = (
        select(ConversationState)
        .where(ConversationState.expires_at > now)
        .order_by(ConversationState.id)
        .limit(limit)
    )
    if flow:
        query = query.where(ConversationState.conversation_flow == flow)
    if step:
        query = query.where(ConversationState.current_step == step)
    if phone_number_id:
        query = query.where(ConversationState.phone_number_id == phone_number_id)
    if after_id is not None:
        query = query.where(ConversationState.id > after_id)
    if handed_off:
        query = query.where(ConversationState.handoff_queue.is_not(None))
    if queue:
        query = query.where(ConversationState.handoff_queue == queue)
    return list(session.scalars(query))


def remove(session: Session, phone_number_id: str, phone_number: str) -> int:
    return affected_rows(
        session,
        delete(ConversationState).where(
            ConversationState.phone_number_id == phone_number_id,
            ConversationState.phone_number == phone_number,
        ),
    )


def count_active(session: Session, now: datetime) -> int:
    """Conversations not yet expired (for metrics)."""
    query = select(func.count()).where(ConversationState.expires_at > now)
    return int(session.scalar(query) or 0)


def remove_expired(session: Session, now: datetime) -> list[tuple[str, str, str, int, str]]:
    """Delete the expired conversations; whose they were, of which template, in which step."""
    statement = (
        delete(ConversationState)
        .where(ConversationState.expires_at <= now)
        .returning(
            ConversationState.phone_number_id,
            ConversationState.phone_number,
            ConversationState.conversation_flow,
            ConversationState.template_version,
            ConversationState.current_step,
        )
        .execution_options(synchronize_session=False)
    )
    return [(r[0], r[1], r[2], r[3], r[4]) for r in session.execute(statement)]


def remove_of_template(session: Session, name: str) -> int:
    """Every conversation running on template `name` (any version)."""
    return affected_rows(
        session, delete(ConversationState).where(ConversationState.conversation_flow == name)
    )
