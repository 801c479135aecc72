"""Deleting rows kept only for a while: finished flow results, outbox messages and calls done with.

Each call deletes at most `limit` rows, oldest first, so a large backlog is cleared in short
transactions that never hold many locks at once.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from flowsvc.store.calls import DONE, SUPERSEDED
from flowsvc.store.db import affected_rows
from flowsvc.store.models import FlowResult, OutboxMessage, QueuedCall
from flowsvc.store.outbox import FAILED, SENT


def remove_results(session: Session, cutoff: datetime, limit: int) -> int:
    """Results of flows completed before `cutoff`."""
    oldest = (
        select(FlowResult.id)
        .where(FlowResult.created_at < cutoff)
        .order_by(FlowResult.id)
        .limit(limit)
    )
    statement = delete(FlowResult).where(FlowResult.id.in_(oldest.scalar_subquery()))
    return affected_rows(session, statement)


def remove_finished_outbox(session: Session, cutoff: datetime, limit: int) -> int:
    """Outbox messages sent or failed for good, last changed before `cutoff`. Pending messages
    are never deleted, however old: each is a reply a customer is still owed."""
    oldest = (
        select(OutboxMessage.id)
        .where(OutboxMessage.state.in_((SENT, FAILED)), OutboxMessage.updated_at < cutoff)
        .order_by(OutboxMessage.id)
        .limit(limit)
    )
    statement = delete(OutboxMessage).where(OutboxMessage.id.in_(oldest.scalar_subquery()))
    return affected_rows(session, statement)


def remove_finished_calls(session: Session, cutoff: datetime, limit: int) -> int:
    """Calls finished (their result handed back) or superseded, last changed before `cutoff`.
    Pending calls are never deleted, however old: a conversation may still wait for one, and a
    caller may hold its lease. A result handed back for a deleted call is NOT_FOUND."""
    oldest = (
        select(QueuedCall.id)
        .where(QueuedCall.state.in_((DONE, SUPERSEDED)), QueuedCall.updated_at < cutoff)
        .order_by(QueuedCall.id)
        .limit(limit)
    )
    statement = delete(QueuedCall).where(QueuedCall.id.in_(oldest.scalar_subquery()))
    return affected_rows(session, statement)
