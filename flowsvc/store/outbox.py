"""The outbox: Graph API requests queued in the same transaction as the state change that made
them, leased to one sender at a time per customer, sent in id order."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, func, select, tuple_, update
from sqlalchemy.orm import Session

from flowsvc.store.customers import Customer
from flowsvc.store.models import OutboxMessage
from flowsvc.store.times import read_time, sqlite_time

PENDING = "pending"
SENT = "sent"
FAILED = "failed"


@dataclass(frozen=True)
class Lease:
    owner: str
    expires_at: datetime


def by_ids(session: Session, ids: Iterable[int]) -> list[OutboxMessage]:
    ids = list(ids)
    if not ids:
        return []
    return list(
        session.scalars(
            select(OutboxMessage).where(OutboxMessage.id.in_(ids)).order_by(OutboxMessage.id)
        )
    )


def due_customers(
    session: Session, now: datetime, limit: int, *, lease_ended_by: datetime | None = None
) -> list[Customer]:
    """Customers with a pending message due now whose lease (if any) ended by `lease_ended_by`
    (default: now), oldest first."""
    ended_by = now if lease_ended_by is None else lease_ended_by
    customer = (OutboxMessage.phone_number_id, OutboxMessage.phone_number)
    rows = session.execute(
        select(*customer)
        .where(
            OutboxMessage.state == PENDING,
            OutboxMessage.next_attempt_at <= now,
            (OutboxMessage.lease_expires_at.is_(None))
            | (OutboxMessage.lease_expires_at <= ended_by),
        )
        .group_by(*customer)
        .order_by(func.min(OutboxMessage.id))
        .limit(limit)
    )
    return [(row[0], row[1]) for row in rows]


def pending_of(session: Session, customers: Sequence[Customer]) -> list[OutboxMessage]:
    """Every pending message of these customers, each customer's in sending order."""
    if not customers:
        return []
    return list(
        session.scalars(
            select(OutboxMessage)
            .where(
                tuple_(OutboxMessage.phone_number_id, OutboxMessage.phone_number).in_(customers),
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


def by_id_for_update(session: Session, outbox_id: int) -> OutboxMessage | None:
    return session.scalar(
        select(OutboxMessage).where(OutboxMessage.id == outbox_id).with_for_update()
    )


def pending_depth(session: Session) -> tuple[int, datetime | None]:
    """How many messages are pending, and when the oldest of them was written (for metrics)."""
    count, oldest = session.execute(
        select(func.count(), func.min(OutboxMessage.created_at)).where(
            OutboxMessage.state == PENDING
        )
    ).one()
    return int(count or 0), read_time(oldest) if oldest is not None else None


def by_wa_message_id(session: Session, wa_message_id: str) -> OutboxMessage | None:
    return session.scalar(
        select(OutboxMessage).where(OutboxMessage.wa_message_id == wa_message_id).with_for_update()
    )


def wa_message_id_holders(session: Session, wa_message_ids: Iterable[str]) -> dict[str, int]:
    """Which message already holds each of these Meta message ids (the column is unique)."""
    wanted = sorted(set(wa_message_ids))
    if not wanted:
        return {}
    rows = session.execute(
        select(OutboxMessage.wa_message_id, OutboxMessage.id).where(
            OutboxMessage.wa_message_id.in_(wanted)
        )
    )
    return {wa_id: id_ for wa_id, id_ in rows if wa_id is not None}


@dataclass(frozen=True, slots=True)
class Settlement:
    """What one ack writes to its message if the ack counts: `kind` is sent, failed, retry or
    released; `set_error` whether the error fields are overwritten; `next_attempt_at` a retry's."""

    id: int
    kind: str
    wa_message_id: str | None
    next_attempt_at: datetime | None
    set_error: bool
    error_code: int | None
    error_title: str
    error_details: str


_LOCK = (
    "SELECT id, state, lease_owner, lease_expires_at, phone_number_id, phone_number FROM outbox"
    " WHERE id IN ({ids}) ORDER BY id"
)
_PG_SETTLE = """
UPDATE outbox o SET
    lease_owner = NULL, lease_expires_at = NULL, updated_at = %(now)s,
    attempts = o.attempts + ack.increment,
    error_code = CASE WHEN ack.set_error THEN ack.error_code ELSE o.error_code END,
    error_title = CASE WHEN ack.set_error THEN ack.error_title ELSE o.error_title END,
    error_details = CASE WHEN ack.set_error THEN ack.error_details ELSE o.error_details END,
    state = COALESCE(ack.state, o.state),
    wa_message_id = CASE WHEN ack.sent THEN ack.wa_message_id ELSE o.wa_message_id END,
    next_attempt_at = COALESCE(ack.next_attempt_at, o.next_attempt_at)
FROM (VALUES {rows}) AS ack (id, increment, set_error, error_code, error_title, error_details,
    state, sent, wa_message_id, next_attempt_at)
WHERE o.id = ack.id
"""
_PG_ROW = (
    "(CAST(%(id_{n})s AS bigint), CAST(%(increment_{n})s AS integer),"
    " CAST(%(set_error_{n})s AS boolean), CAST(%(error_code_{n})s AS integer),"
    " CAST(%(error_title_{n})s AS text), CAST(%(error_details_{n})s AS text),"
    " CAST(%(state_{n})s AS text), CAST(%(sent_{n})s AS boolean),"
    " CAST(%(wa_message_id_{n})s AS text), CAST(%(next_attempt_at_{n})s AS timestamptz))"
)
_SQLITE_SETTLE = """
UPDATE outbox SET lease_owner = NULL, lease_expires_at = NULL, updated_at = :now,
    attempts = attempts + :increment,
    error_code = CASE WHEN :set_error THEN :error_code ELSE error_code END,
    error_title = CASE WHEN :set_error THEN :error_title ELSE error_title END,
    error_details = CASE WHEN :set_error THEN :error_details ELSE error_details END,
    state = COALESCE(:state, state),
    wa_message_id = CASE WHEN :sent THEN :wa_message_id ELSE wa_message_id END,
    next_attempt_at = COALESCE(:next_attempt_at, next_attempt_at)
WHERE id = :id
"""


@dataclass(frozen=True, slots=True)
class Settled:
    """What settle did: the messages whose lease the owner no longer held (in id order), and the
    messages it sent or failed for good, with whose they are."""

    lost: list[int]
    finished: list[tuple[Customer, Settlement]]


_PG_LOCK_FOR_ACK = """
WITH locked AS MATERIALIZED (
    SELECT id, state, lease_owner, lease_expires_at, phone_number_id, phone_number FROM outbox
    WHERE id = ANY(%(ids)s::bigint[]) ORDER BY id FOR UPDATE
)
SELECT id, state, lease_owner, lease_expires_at, phone_number_id, phone_number,
       NULL AS wa_message_id
FROM locked
UNION ALL
SELECT id, NULL, NULL, NULL, NULL, NULL, wa_message_id FROM outbox
WHERE wa_message_id = ANY(%(wa_message_ids)s::text[])
"""


@dataclass(frozen=True, slots=True)
class Locked:
    """Messages locked to be acked (id, state, lease owner and expiry, customer; in id order),
    and which message already held each Meta message id asked about."""

    rows: list[tuple[Any, ...]]
    holders: dict[str, int]


def lock_for_ack(session: Session, ids: Iterable[int], wa_message_ids: Iterable[str]) -> Locked:
    """Lock messages `ids` in id order (their acks are applied under the locks), and find which
    messages hold `wa_message_ids` already: on PostgreSQL in one statement."""
    ids, wanted = sorted(set(ids)), sorted(set(wa_message_ids))
    connection = session.connection()
    if not ids:
        return Locked([], {})
    if connection.dialect.name != "postgresql":
        holders = wa_message_id_holders(session, wanted)
        found = connection.exec_driver_sql(_lock_sql(False, len(ids)), tuple(ids)).all()
        return Locked([tuple(row) for row in found], holders)
    parameters = {"ids": ids, "wa_message_ids": wanted}
    locked, holders = [], {}
    for row in connection.exec_driver_sql(_PG_LOCK_FOR_ACK, parameters):
        if row[1] is None:
            holders[row[6]] = row[0]
        else:
            locked.append(tuple(row[:6]))
    locked.sort(key=lambda row: row[0])
    return Locked(locked, holders)


def write_settled(connection: Connection, now: datetime, rows: Sequence[dict[str, Any]]) -> None:
    """Write settling's rows: one UPDATE on PostgreSQL, one per message on SQLite."""
    if not rows:
        return
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(*pg_settle_statement(now, rows))
        return
    for values in rows:
        next_at = values["next_attempt_at"]
        connection.exec_driver_sql(
            _SQLITE_SETTLE,
            values | {"now": sqlite_time(now), "next_attempt_at": next_at and sqlite_time(next_at)},
        )


def settling(
    owner: str, now: datetime, settlements: Sequence[Settlement], locked: Sequence[tuple[Any, ...]]
) -> tuple[Settled, list[dict[str, Any]]]:
    """Acks (at most one per id) applied to the `locked` rows (lock_for_ack's, so under the
    messages' row locks, taken in id order): the pending messages whose lease `owner` no longer
    held, those now sent or failed, and the values to write to each message (write_settled).

    A settled message is left alone (a repeated ack); an ack counts if the lease is `owner`'s or
    expired, and a `sent` always (Meta took it, whoever holds the lease now).
    """
    by_id = {s.id: s for s in settlements}
    lost: list[int] = []
    rows: list[dict[str, Any]] = []
    finished: list[tuple[Customer, Settlement]] = []
    for id_, state, lease_owner, lease_expires_at, phone_number_id, phone_number in locked:
        if state != PENDING or id_ not in by_id:
            continue
        s = by_id[id_]
        leased = lease_expires_at is not None and read_time(lease_expires_at) > now
        if lease_owner != owner and leased:
            lost.append(id_)
            if s.kind != SENT:
                continue
        released = s.kind == "released"
        if s.kind in (SENT, FAILED):
            finished.append(((phone_number_id, phone_number), s))
        rows.append(
            {
                "id": id_,
                "increment": 0 if released else 1,
                "set_error": s.set_error,
                "error_code": s.error_code,
                "error_title": s.error_title,
                "error_details": s.error_details,
                "state": s.kind if s.kind in (SENT, FAILED) else None,
                "sent": s.kind == SENT,
                "wa_message_id": s.wa_message_id,
                "next_attempt_at": s.next_attempt_at,
            }
        )
    return Settled(lost, finished), rows


def pg_settle_statement(
    now: datetime, rows: Sequence[dict[str, Any]]
) -> tuple[str, dict[str, Any]]:
    """PostgreSQL: settling's rows written in one UPDATE (psycopg2's `%(name)s` style)."""
    parameters: dict[str, Any] = {"now": now}
    for n, values in enumerate(rows):
        parameters |= {f"{name}_{n}": value for name, value in values.items()}
    return _pg_settle_sql(len(rows)), parameters


@lru_cache(maxsize=128)
def _lock_sql(postgres: bool, count: int) -> str:
    if postgres:
        return _LOCK.format(ids=", ".join(["%s"] * count)) + " FOR UPDATE"
    return _LOCK.format(ids=", ".join(["?"] * count))  # the writer lock is held since BEGIN


@lru_cache(maxsize=64)
def _pg_settle_sql(count: int) -> str:
    return _PG_SETTLE.replace("{rows}", ",\n    ".join(_PG_ROW.format(n=n) for n in range(count)))
