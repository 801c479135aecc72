"""conversation_state rows: read, save (insert or update) and delete a customer's conversation."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from flowsvc.store.models import ConversationState


def get(session: Session, phone_number_id: str, phone_number: str) -> ConversationState | None:
    return session.scalar(
        select(ConversationState).where(
            ConversationState.phone_number_id == phone_number_id,
            ConversationState.phone_number == phone_number,
        )
    )


def remove(session: Session, phone_number_id: str, phone_number: str) -> int:
    return session.execute(
        delete(ConversationState).where(
            ConversationState.phone_number_id == phone_number_id,
            ConversationState.phone_number == phone_number,
        )
    ).rowcount


def remove_expired(session: Session, now: datetime) -> int:
    return session.execute(
        delete(ConversationState).where(ConversationState.expires_at <= now)
    ).rowcount
