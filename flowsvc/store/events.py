"""The event log: what happened, written in the same transaction as the change it describes.

A unit of work records drafts as it goes (`record`); when its session commits, they are written
in one statement just before COMMIT (`attach` installs that on a sessionmaker). On PostgreSQL the
hot paths save that round trip: a turn's write statement carries the events as CTEs (TURN_CTES,
store.turns), an ack's UPDATE goes in one round trip with them (`write_after`); either way it is
the transaction's last statement. Ids are given
there, from the one row of event_counter that the statement updates: the row lock is held until
COMMIT, so transactions take their ids one after the other and commit in that order. An id a
reader can see is therefore never followed by a smaller one committing later (a sequence would
allow that: ids drawn in one order, committed in another), ids have no gaps, and a reader that
resumes after the last id it saw misses nothing. The lock is taken as each transaction's last
statement, so it is held only for the COMMIT itself, and never while waiting for another lock.

On PostgreSQL the statement also NOTIFYs `menuflow_events` with the last id (delivered at
COMMIT, and not at all after a rollback), which wakes the watchers of every flowsvc process.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, delete, event, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from flowsvc.clock import utcnow
from flowsvc.store import prepared
from flowsvc.store.customers import Customer
from flowsvc.store.db import affected_rows
from flowsvc.store.json_text import compact_unicode
from flowsvc.store.models import Event, EventCounter
from flowsvc.store.times import sqlite_time

CHANNEL = "menuflow_events"
_DRAFTS = "menuflow_event_drafts"
LAST_ID = "menuflow_event_last_id"  # session.info: the last id the session's commit wrote

_PG_WRITE = """
WITH counter AS (
    INSERT INTO event_counter (id, last_id, purged_through) VALUES (1, :event_count, 0)
    ON CONFLICT (id) DO UPDATE SET last_id = event_counter.last_id + excluded.last_id
    RETURNING last_id
), written AS (
    INSERT INTO events (id, type, phone_number_id, phone_number, template_name,
        template_version, payload, created_at)
    SELECT counter.last_id - :event_count + e.n, e.type, e.phone_number_id, e.phone_number,
           e.template_name, e.template_version, e.payload::jsonb, :event_now
    FROM counter, unnest(:event_types::text[], :event_phone_number_ids::text[],
                         :event_phone_numbers::text[], :event_template_names::text[],
                         :event_template_versions::int[], :event_payloads::text[])
         WITH ORDINALITY AS e(type, phone_number_id, phone_number, template_name,
                              template_version, payload, n)
)
SELECT last_id, pg_notify('menuflow_events', last_id::text) FROM counter
"""
# The same, as CTEs of the statement that writes a turn (store.turn_statements), so that a turn
# and its events take one round trip; {outbox} is the outbox rows that statement inserts (a
# `queued` CTE of theirs), or none. The statement's own main SELECT must read `counter` (and
# NOTIFY, see turn_statements): data-modifying CTEs always run, a SELECT only when read.
TURN_CTES = """
counter AS (
    INSERT INTO event_counter (id, last_id, purged_through) VALUES (1, :event_count, 0)
    ON CONFLICT (id) DO UPDATE SET last_id = event_counter.last_id + excluded.last_id
    RETURNING last_id
), logged AS (
    INSERT INTO events (id, type, phone_number_id, phone_number, template_name,
        template_version, payload, created_at)
    SELECT counter.last_id - :event_count + e.n, e.type, e.phone_number_id, e.phone_number,
           e.template_name, e.template_version,
           CASE WHEN r.id IS NULL THEN e.payload::jsonb
                ELSE e.payload::jsonb || jsonb_build_object('outbox_id', r.id) END,
           :event_now
    FROM counter CROSS JOIN unnest(:event_types::text[], :event_phone_number_ids::text[],
                         :event_phone_numbers::text[], :event_template_names::text[],
                         :event_template_versions::int[], :event_payloads::text[],
                         :event_queued::int[])
         WITH ORDINALITY AS e(type, phone_number_id, phone_number, template_name,
                              template_version, payload, queued, n)
    LEFT JOIN {outbox} AS r ON r.n = e.queued
)"""
# Ids are given in insertion order within a statement: the n-th row inserted has the n-th id.
TURN_OUTBOX = "(SELECT id, row_number() OVER (ORDER BY id) AS n FROM queued)"
NO_OUTBOX = "(SELECT NULL::bigint AS id, NULL::bigint AS n WHERE FALSE)"

# The row is made if missing (a database emptied by hand keeps working).
_SQLITE_COUNT = """
INSERT INTO event_counter (id, last_id, purged_through) VALUES (1, ?, 0)
ON CONFLICT (id) DO UPDATE SET last_id = event_counter.last_id + excluded.last_id
RETURNING last_id
"""
_SQLITE_ROW = "(?, ?, ?, ?, ?, ?, ?, ?)"
_SQLITE_INSERT = """
INSERT INTO events (id, type, phone_number_id, phone_number, template_name, template_version,
    payload, created_at)
VALUES {rows}
"""
_SQLITE_CHUNK = 500  # rows per INSERT (8 parameters each, well under SQLite's limit)


@dataclass(frozen=True, slots=True)
class Draft:
    """An event to write: its type (EventType's name without the prefix, lower case), whose, of
    which template, and its payload (the proto payload message's fields)."""

    type: str
    customer: Customer
    template_name: str = ""
    template_version: int = 0
    payload: dict[str, Any] = field(default_factory=dict)
    # Written with a turn (TURN_CTES): the position (from 1) of the outbox row, among those the
    # turn's statement inserts, whose id the payload's outbox_id is (0: none).
    queued: int = 0


@dataclass(frozen=True, slots=True)
class Filter:
    """Which events a reader wants; an empty field does not narrow."""

    types: frozenset[str] = frozenset()
    template_name: str = ""
    phone_number_id: str = ""
    phone_number: str = ""


def record(session: Session, drafts: Sequence[Draft]) -> None:
    """Write `drafts` with the session's transaction, when it commits (nothing if it rolls back)."""
    if drafts:
        session.info.setdefault(_DRAFTS, []).extend(drafts)


def attach(sessions: sessionmaker[Session]) -> None:
    """Make the sessions write their recorded events as the last statement before COMMIT."""

    @event.listens_for(sessions, "before_commit")
    def _before_commit(session: Session) -> None:
        drafts = session.info.pop(_DRAFTS, None)
        if drafts:
            session.info[LAST_ID] = write(session.connection(), drafts, utcnow())

    @event.listens_for(sessions, "after_rollback")
    def _after_rollback(session: Session) -> None:
        session.info.pop(_DRAFTS, None)


def write(connection: Connection, drafts: Sequence[Draft], now: datetime) -> int:
    """Number and insert `drafts` (one statement on PostgreSQL, two on SQLite); the last id."""
    if connection.dialect.name == "postgresql":
        last_id: int = prepared.run(connection, (_PG_WRITE,), _pg_parameters(drafts, now)).one()[0]
        return last_id
    last_id = connection.exec_driver_sql(_SQLITE_COUNT, (len(drafts),)).one()[0]
    first = last_id - len(drafts) + 1
    at = sqlite_time(now)
    for start in range(0, len(drafts), _SQLITE_CHUNK):
        chunk = drafts[start : start + _SQLITE_CHUNK]
        values: list[Any] = []
        for n, d in enumerate(chunk, start=first + start):
            values += [n, d.type, *d.customer, d.template_name, d.template_version]
            values += [compact_unicode(d.payload), at]
        rows = ", ".join([_SQLITE_ROW] * len(chunk))
        connection.exec_driver_sql(_SQLITE_INSERT.format(rows=rows), tuple(values))
    return last_id


def write_after(
    session: Session, statement: str, parameters: dict[str, Any], drafts: Sequence[Draft]
) -> None:
    """PostgreSQL: run `statement` (psycopg2's `%(name)s` style, no `event_` parameters), then
    write `drafts` with it in the same round trip, instead of in a statement of their own at
    COMMIT; the session's last statement all the same (nothing may follow it but COMMIT: the
    counter row stays locked until then). Other drafts the session recorded are written at
    COMMIT as usual, with larger ids."""
    if not drafts:
        session.connection().exec_driver_sql(statement, parameters)
        return
    now = utcnow()
    rows = prepared.run(
        session.connection(),
        (_PG_WRITE,),
        parameters | _pg_parameters(drafts, now),
        first=statement,
    )
    written(session, rows.one()[0])


def take(session: Session) -> list[Draft]:
    """The drafts the session recorded and has not written, now the caller's to write (with
    write_after or a turn's statement: see store.turns)."""
    taken: list[Draft] = session.info.pop(_DRAFTS, [])
    return taken


def written(session: Session, last_id: int) -> None:
    """The session wrote events through `last_id` itself (said to watchers after COMMIT)."""
    session.info[LAST_ID] = max(session.info.get(LAST_ID, 0), last_id)


def pg_parameters(drafts: Sequence[Draft], now: datetime) -> dict[str, Any]:
    """The parameters of `drafts` in _PG_WRITE and TURN_CTES."""
    return _pg_parameters(drafts, now)


def _pg_parameters(drafts: Sequence[Draft], now: datetime) -> dict[str, Any]:
    return {
        "event_count": len(drafts),
        "event_now": now,
        "event_types": prepared.texts(d.type for d in drafts),
        "event_phone_number_ids": prepared.texts(d.customer[0] for d in drafts),
        "event_phone_numbers": prepared.texts(d.customer[1] for d in drafts),
        "event_template_names": prepared.texts(d.template_name for d in drafts),
        "event_template_versions": prepared.ints(d.template_version for d in drafts),
        "event_payloads": [compact_unicode(d.payload) for d in drafts],
        "event_queued": prepared.ints(d.queued for d in drafts),
    }


def bounds(session: Session) -> tuple[int, int]:
    """(the last id given, the last id retention deleted through)."""
    row = session.execute(
        select(EventCounter.last_id, EventCounter.purged_through).where(EventCounter.id == 1)
    ).one_or_none()
    return (row.last_id, row.purged_through) if row is not None else (0, 0)


def read(
    session: Session, after_id: int, through_id: int, wanted: Filter, limit: int
) -> list[Row[Any]]:
    """Events with after_id < id <= through_id that `wanted` matches, oldest first, as rows
    with Event's columns (no ORM objects: a watcher's reader loads every event)."""
    query = (
        select(*Event.__table__.columns)
        .where(Event.id > after_id, Event.id <= through_id)
        .order_by(Event.id)
        .limit(limit)
    )
    if wanted.types:
        query = query.where(Event.type.in_(sorted(wanted.types)))
    if wanted.template_name:
        query = query.where(Event.template_name == wanted.template_name)
    if wanted.phone_number_id:
        query = query.where(Event.phone_number_id == wanted.phone_number_id)
    if wanted.phone_number:
        query = query.where(Event.phone_number == wanted.phone_number)
    return list(session.execute(query).all())


def remove_older_than(session: Session, cutoff: datetime, limit: int) -> int:
    """Delete the oldest events, at most `limit`, up to the last one written before `cutoff`;
    remember how far (a reader resuming from before it is told, not silently skipped)."""
    through = session.scalar(select(func.max(Event.id)).where(Event.created_at < cutoff))
    if through is None:
        return 0
    oldest = select(Event.id).where(Event.id <= through).order_by(Event.id).limit(limit)
    doomed = list(session.scalars(oldest))
    if not doomed:
        return 0
    removed = affected_rows(session, delete(Event).where(Event.id <= doomed[-1]))
    affected_rows(
        session,
        update(EventCounter)
        .where(EventCounter.id == 1, EventCounter.purged_through < doomed[-1])
        .values(purged_through=doomed[-1]),
    )
    return removed
