"""Queued calls to the business's HTTP APIs (the `calls` table): written in the transaction of
the turn whose call step queued them, leased to one caller at a time, finished once."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from flowsvc.engine import CallRequest
from flowsvc.store.customers import Customer
from flowsvc.store.models import QueuedCall
from flowsvc.store.times import read_time

PENDING = "pending"
DONE = "done"
SUPERSEDED = "superseded"


def queue(
    session: Session, customer: Customer, flow: str, request: CallRequest, now: datetime
) -> int:
    """Queue a call; the customer's earlier pending calls are superseded (their conversation
    no longer waits for them, and a result for them is ignored). Returns the call's id."""
    session.execute(
        update(QueuedCall)
        .where(
            QueuedCall.phone_number_id == customer[0],
            QueuedCall.phone_number == customer[1],
            QueuedCall.state == PENDING,
        )
        .values(state=SUPERSEDED, updated_at=now)
    )
    row = QueuedCall(
        phone_number_id=customer[0],
        phone_number=customer[1],
        flow=flow,
        step=request.step,
        endpoint=request.endpoint,
        method=request.method,
        path=request.path,
        body_json=request.body_json,
        timeout_seconds=request.timeout_seconds,
        state=PENDING,
        attempts=0,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    session.flush()
    return row.id


def claim(
    session: Session, owner: str, limit: int, lease: timedelta, now: datetime
) -> Sequence[QueuedCall]:
    """Lease up to `limit` pending calls no one holds (or whose lease ended), oldest first, each
    claim counting an attempt. SKIP LOCKED on PostgreSQL: claimers racing take different calls."""
    query = (
        select(QueuedCall)
        .where(
            QueuedCall.state == PENDING,
            QueuedCall.lease_expires_at.is_(None) | (QueuedCall.lease_expires_at <= now),
        )
        .order_by(QueuedCall.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    rows = list(session.scalars(query))
    for row in rows:
        row.attempts += 1
        row.lease_owner = owner
        row.lease_expires_at = now + lease
        row.updated_at = now
    session.flush()
    return rows


def get(session: Session, call_id: int) -> QueuedCall | None:
    return session.get(QueuedCall, call_id)


def finish(session: Session, call: QueuedCall, now: datetime) -> None:
    call.state = DONE
    call.lease_owner = None
    call.lease_expires_at = None
    call.updated_at = now
    session.flush()


def pending_depth(session: Session) -> tuple[int, datetime | None]:
    """How many calls are pending (queued or running: conversations wait for them), and when the
    oldest was queued (for metrics; the claim's index on (state, id) finds them)."""
    count, oldest = session.execute(
        select(func.count(), func.min(QueuedCall.created_at)).where(QueuedCall.state == PENDING)
    ).one()
    return int(count or 0), read_time(oldest) if oldest is not None else None
