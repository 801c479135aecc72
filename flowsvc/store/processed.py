"""processed_messages rows: which inbound message ids were handled, and what that produced."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from flowsvc.store.models import ProcessedMessage


def get(session: Session, message_id: str) -> ProcessedMessage | None:
    return session.scalar(select(ProcessedMessage).where(ProcessedMessage.message_id == message_id))


def record(
    session: Session,
    message_id: str,
    phone_number_id: str,
    phone_number: str,
    outcome: str,
    outbox_ids: Sequence[int],
    now: datetime,
) -> None:
    session.add(
        ProcessedMessage(
            message_id=message_id,
            phone_number_id=phone_number_id,
            phone_number=phone_number,
            outcome=outcome,
            outbox_ids=list(outbox_ids),
            processed_at=now,
        )
    )


def remove_older_than(session: Session, cutoff: datetime) -> int:
    return session.execute(
        delete(ProcessedMessage).where(ProcessedMessage.processed_at < cutoff)
    ).rowcount
