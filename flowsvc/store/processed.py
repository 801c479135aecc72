"""processed_messages rows outside a turn: which inbound message ids were handled (dedupe)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.orm import Session

from flowsvc.store.db import affected_rows
from flowsvc.store.models import ProcessedMessage


def remove_older_than(session: Session, cutoff: datetime) -> int:
    return affected_rows(
        session, delete(ProcessedMessage).where(ProcessedMessage.processed_at < cutoff)
    )
