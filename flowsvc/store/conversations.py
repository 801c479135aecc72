"""conversation_state rows: read, save (insert or update) and delete a customer's conversation."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from flowsvc.engine import State, history_from_json, history_to_json
from flowsvc.store.models import ConversationState
from flowsvc.store.upsert import insert


def get(session: Session, phone_number_id: str, phone_number: str) -> ConversationState | None:
    return session.scalar(
        select(ConversationState).where(
            ConversationState.phone_number_id == phone_number_id,
            ConversationState.phone_number == phone_number,
        )
    )


def to_state(row: ConversationState) -> State:
    return State(
        flow=row.conversation_flow,
        version=row.template_version,
        step=row.current_step,
        context=row.context,
        history=history_from_json(row.history),
        expires_at=row.expires_at,
        last_interaction=row.last_interaction,
    )


def save(session: Session, phone_number_id: str, phone_number: str, state: State) -> None:
    """Insert or replace the customer's conversation with `state` (one statement)."""
    values = {
        "conversation_flow": state.flow,
        "template_version": state.version,
        "current_step": state.step,
        "context": dict(state.context),
        "history": history_to_json(state.history),
        "last_interaction": state.last_interaction,
        "expires_at": state.expires_at,
    }
    statement = insert(session, ConversationState).values(
        phone_number_id=phone_number_id, phone_number=phone_number, **values
    )
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[ConversationState.phone_number_id, ConversationState.phone_number],
            set_=values,
        )
    )


def remove(session: Session, phone_number_id: str, phone_number: str) -> int:
    return session.execute(
        delete(ConversationState).where(
            ConversationState.phone_number_id == phone_number_id,
            ConversationState.phone_number == phone_number,
        )
    ).rowcount


def touch(session: Session, row_id: int, last_interaction: datetime, expires_at: datetime) -> None:
    session.execute(
        update(ConversationState)
        .where(ConversationState.id == row_id)
        .values(last_interaction=last_interaction, expires_at=expires_at)
    )


def remove_expired(session: Session, now: datetime) -> int:
    return session.execute(
        delete(ConversationState).where(ConversationState.expires_at <= now)
    ).rowcount
