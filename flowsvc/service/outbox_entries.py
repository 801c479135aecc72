"""Outbox messages as the service hands them out (HandleMessage's replies, ClaimOutbox)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flowsvc.store.models import OutboxMessage
from flowsvc.store.outbox import PENDING


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One Graph API request to send, with its delivery state and lease."""

    id: int
    phone_number_id: str
    phone_number: str
    source_id: str
    body_json: str
    lease_owner: str | None
    lease_expires_at: datetime | None
    created_at: datetime
    state: str = PENDING
    attempts: int = 0
    wa_message_id: str | None = None
    delivery_status: str | None = None
    error_code: int | None = None
    error_title: str | None = None
    error_details: str | None = None


def from_row(row: OutboxMessage) -> OutboxEntry:
    return OutboxEntry(
        id=row.id,
        phone_number_id=row.phone_number_id,
        phone_number=row.phone_number,
        source_id=row.source_id,
        body_json=row.body_json,
        lease_owner=row.lease_owner,
        lease_expires_at=row.lease_expires_at,
        created_at=row.created_at,
        state=row.state,
        attempts=row.attempts,
        wa_message_id=row.wa_message_id,
        delivery_status=row.delivery_status,
        error_code=row.error_code,
        error_title=row.error_title,
        error_details=row.error_details,
    )
