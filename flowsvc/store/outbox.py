"""The outbox: Graph API requests queued in the same transaction as the state change that made
them, leased to one sender at a time per customer, in order."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, tuple_, update
from sqlalchemy.orm import Session

from flowsvc.store.models import OutboxMessage

PENDING = "pending"
SENT = "sent"
FAILED = "failed"

Lane = tuple[str, str]
"""(phone_number_id, phone_number): one customer's queue, sent strictly in id order."""


@dataclass(frozen=True)
class Lease:
    owner: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Queued:
    """A message a turn has just queued, as the caller gets it (not read back from the table)."""

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


def by_ids(session: Session, ids: Iterable[int]) -> list[OutboxMessage]:
    ids = list(ids)
    if not ids:
        return []
    return list(
        session.scalars(
            select(OutboxMessage).where(OutboxMessage.id.in_(ids)).order_by(OutboxMessage.id)
        )
    )


def due_lanes(session: Session, now: datetime, limit: int) -> list[Lane]:
    """Customers with a pending, unleased message due now, oldest first."""
    lane = (OutboxMessage.phone_number_id, OutboxMessage.phone_number)
    rows = session.execute(
        select(*lane)
        .where(
            OutboxMessage.state == PENDING,
            OutboxMessage.next_attempt_at <= now,
            (OutboxMessage.lease_expires_at.is_(None)) | (OutboxMessage.lease_expires_at <= now),
        )
        .group_by(*lane)
        .order_by(func.min(OutboxMessage.id))
        .limit(limit)
    )
    return [(row[0], row[1]) for row in rows]


def pending_in(session: Session, lanes: Sequence[Lane]) -> list[OutboxMessage]:
    """Every pending message of these customers, each customer's in sending order."""
    if not lanes:
        return []
    return list(
        session.scalars(
            select(OutboxMessage)
            .where(
                tuple_(OutboxMessage.phone_number_id, OutboxMessage.phone_number).in_(lanes),
                OutboxMessage.state == PENDING,
            )
            .order_by(OutboxMessage.phone_number_id, OutboxMessage.phone_number, OutboxMessage.id)
        )
    )


def set_lease(session: Session, ids: Sequence[int], lease: Lease, now: datetime) -> None:
    if ids:
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(ids))
            .values(lease_owner=lease.owner, lease_expires_at=lease.expires_at, updated_at=now)
        )


def count_pending(session: Session) -> int:
    return int(session.scalar(select(func.count()).where(OutboxMessage.state == PENDING)) or 0)


def for_update(session: Session, ids: Sequence[int]) -> list[OutboxMessage]:
    if not ids:
        return []
    return list(
        session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.id.in_(ids))
            .order_by(OutboxMessage.id)
            .with_for_update()
        )
    )


def by_wa_message_id(session: Session, wa_message_id: str) -> OutboxMessage | None:
    return session.scalar(
        select(OutboxMessage).where(OutboxMessage.wa_message_id == wa_message_id).with_for_update()
    )
