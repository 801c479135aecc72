"""Webhook endpoints' deliveries: a durable cursor per endpoint, the lease of the one deliverer,
and the events given up on (dead letters).

Taking the lease and moving the cursor are single conditional UPDATEs, so two gateways racing for
an endpoint (on either database) never both hold it, and an owner that lost the lease cannot move
the cursor: its ack changes nothing and the new owner delivers from where the cursor stands.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from flowsvc.store.db import affected_rows
from flowsvc.store.models import EventDeadLetter, EventDelivery


@dataclass(frozen=True, slots=True)
class Letter:
    """An event given up on: which, why, and the endpoint's last HTTP status (0: none)."""

    event_id: int
    reason: str
    http_status: int = 0


def ensure(session: Session, endpoint: str, cursor: int, now: datetime) -> None:
    """Make `endpoint`'s row, at `cursor` and leased to nobody, unless it exists."""
    values = {
        "endpoint": endpoint,
        "cursor": cursor,
        "owner": "",
        "lease_expires_at": now,
        "updated_at": now,
    }
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    session.execute(dialect.insert(EventDelivery).values(values).on_conflict_do_nothing())


def exists(session: Session, endpoint: str) -> bool:
    found = session.scalar(select(EventDelivery.endpoint).where(EventDelivery.endpoint == endpoint))
    return found is not None


def take_lease(session: Session, endpoint: str, owner: str, until: datetime, now: datetime) -> bool:
    """Lease `endpoint` to `owner` until `until` if it holds it already or nobody does."""
    taken = affected_rows(
        session,
        update(EventDelivery)
        .where(
            EventDelivery.endpoint == endpoint,
            or_(EventDelivery.owner == owner, EventDelivery.lease_expires_at <= now),
        )
        .values(owner=owner, lease_expires_at=until, updated_at=now),
    )
    return taken == 1


def get(session: Session, endpoint: str) -> EventDelivery | None:
    return session.get(EventDelivery, endpoint, populate_existing=True)


def advance(
    session: Session,
    endpoint: str,
    owner: str,
    from_id: int,
    through_id: int,
    now: datetime,
    *,
    release: bool = False,
) -> bool:
    """Move the cursor from `from_id` to `through_id` if `owner` still holds the endpoint and the
    cursor is still at `from_id`; with `release`, end the lease too."""
    ended = {"lease_expires_at": now} if release else {}
    moved = affected_rows(
        session,
        update(EventDelivery)
        .where(
            EventDelivery.endpoint == endpoint,
            EventDelivery.owner == owner,
            EventDelivery.cursor == from_id,
        )
        .values(cursor=through_id, updated_at=now, **ended),
    )
    return moved == 1


def add_dead_letters(
    session: Session, endpoint: str, letters: Sequence[Letter], now: datetime
) -> None:
    session.add_all(
        EventDeadLetter(
            endpoint=endpoint,
            event_id=letter.event_id,
            reason=letter.reason,
            http_status=letter.http_status,
            created_at=now,
        )
        for letter in letters
    )


def dead_letters(
    session: Session, endpoint: str, before_id: int | None, limit: int
) -> list[EventDeadLetter]:
    """Dead letters, newest first, of `endpoint` (or all), before `before_id` (or the newest)."""
    query = select(EventDeadLetter).order_by(EventDeadLetter.id.desc()).limit(limit)
    if endpoint:
        query = query.where(EventDeadLetter.endpoint == endpoint)
    if before_id is not None:
        query = query.where(EventDeadLetter.id < before_id)
    return list(session.scalars(query))
