"""processed_messages rows: which inbound message ids were handled, and what that produced."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.orm import Session

from flowsvc.store.models import ProcessedMessage


def remove_older_than(session: Session, cutoff: datetime) -> int:
    return session.execute(
        delete(ProcessedMessage).where(ProcessedMessage.processed_at < cutoff)
    ).rowcount
