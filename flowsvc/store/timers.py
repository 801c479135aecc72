"""Step timers (engine.timers): the conversations whose timer is due, and a replica's claim on
one before it fires it.

A timer is two columns of its conversation row (silence_due_at, reminders), written by the
turn's own save: arming or cancelling one costs no statement of its own. Every replica's sweep
reads the due rows; firing one runs a turn under the customer's lock (service.handling), which
checks the row still holds that due time, so a timer fires once however many sweeps saw it. On
PostgreSQL the sweep first claims the customer's lock with SKIP LOCKED: a timer another replica
is firing, or whose customer is writing right now, is left to that turn instead of waited for.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select, text
from sqlalchemy.orm import Session

from flowsvc.store.customers import Customer
from flowsvc.store.models import ConversationState


@dataclass(frozen=True)
class Due:
    """A conversation whose timer is due."""

    conversation_id: int
    customer: Customer
    due: datetime


def due(session: Session, now: datetime, limit: int) -> list[Due]:
    """Conversations whose timer is due, earliest first; handed-off ones wait for the bot
    (their timers are set again when it takes them back), expired ones for the expiry sweep."""
    rows = session.execute(
        select(
            ConversationState.id,
            ConversationState.phone_number_id,
            ConversationState.phone_number,
            ConversationState.silence_due_at,
        )
        .where(
            ConversationState.silence_due_at.is_not(None),
            ConversationState.silence_due_at <= now,
            ConversationState.handoff.is_(None),
            ConversationState.expires_at > now,
        )
        .order_by(ConversationState.silence_due_at)
        .limit(limit)
    )
    return [Due(row[0], (row[1], row[2]), row[3]) for row in rows if row[3] is not None]


_CLAIM = text(
    "SELECT 1 FROM customers WHERE phone_number_id = :phone_number_id "
    "AND phone_number = :phone_number FOR UPDATE SKIP LOCKED"
)
_EXISTS = text(
    "SELECT 1 FROM customers WHERE phone_number_id = :phone_number_id "
    "AND phone_number = :phone_number"
)


def claim(connection: Connection, customer: Customer) -> bool:
    """Take the customer's lock unless another transaction holds it (PostgreSQL); False: leave
    the timer to whoever holds it. SQLite has one writer: the lock is the transaction's."""
    if connection.dialect.name != "postgresql":
        return True
    parameters = {"phone_number_id": customer[0], "phone_number": customer[1]}
    if connection.execute(_CLAIM, parameters).first() is not None:
        return True
    # No lock row at all (never expected: a conversation's turn made it): the turn makes it.
    return connection.execute(_EXISTS, parameters).first() is None
