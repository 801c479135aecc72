"""A customer's turn (HandleMessage, StartConversation) in two round trips: open, then close.

open:  lock the customer's row, then read the dedupe record, the conversation and whether earlier
       replies are still pending. On PostgreSQL both statements go in one round trip but stay two
       statements: in READ COMMITTED a statement reads the snapshot taken when it starts, so a read
       in the same statement as the lock (a CTE) would miss the turn the lock waited for.
close: save or delete the conversation, store the result, queue the outbox rows and record the
       message id. PostgreSQL runs them as one statement (data-modifying CTEs); SQLite (one writer,
       held since BEGIN IMMEDIATE) runs the same statements one by one.

This is the hot path, so it is plain SQL on the Session's connection (the ORM's unit of work cost
more CPU than everything else in a message together); values are converted here, once per dialect.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, CursorResult

from flowsvc.engine import ResultDraft, State, history_from_json, history_to_json
from flowsvc.store.db import PREPARED_STATEMENTS
from flowsvc.store.outbox import Lane, Lease

LOCK = """
INSERT INTO customers (phone_number_id, phone_number) VALUES (:phone_number_id, :phone_number)
ON CONFLICT (phone_number_id, phone_number) DO UPDATE SET phone_number = excluded.phone_number
"""
READ = """
SELECT p.outcome, p.outbox_ids,
       c.conversation_flow, c.template_version, c.current_step, c.context, c.history,
       c.last_interaction, c.expires_at, c.created_at,
       EXISTS (SELECT 1 FROM outbox o WHERE o.phone_number_id = :phone_number_id
               AND o.phone_number = :phone_number AND o.state = 'pending'
               AND NOT COALESCE(o.lease_owner = :lease_owner AND o.lease_expires_at > :now,
                                FALSE)) AS pending
FROM (SELECT 1 AS here) AS here
LEFT JOIN processed_messages p ON p.message_id = :message_id
LEFT JOIN conversation_state c
       ON c.phone_number_id = :phone_number_id AND c.phone_number = :phone_number
"""
SAVE = """
INSERT INTO conversation_state (phone_number_id, phone_number, conversation_flow, template_version,
    current_step, context, history, last_interaction, expires_at)
VALUES (:phone_number_id, :phone_number, :flow, :version, :step, :context, :history,
    :last_interaction, :expires_at)
ON CONFLICT (phone_number_id, phone_number) DO UPDATE SET
    conversation_flow = excluded.conversation_flow, template_version = excluded.template_version,
    current_step = excluded.current_step, context = excluded.context, history = excluded.history,
    last_interaction = excluded.last_interaction, expires_at = excluded.expires_at
"""
REMOVE = """
DELETE FROM conversation_state
WHERE phone_number_id = :phone_number_id AND phone_number = :phone_number
"""
RESULT = """
INSERT INTO flow_results (reference, template_name, template_version, phone_number_id,
    phone_number, context, created_at)
VALUES (:reference, :result_template, :result_version, :phone_number_id, :phone_number,
    :result_context, :now)
"""
OUTBOX = """
INSERT INTO outbox (phone_number_id, phone_number, source_id, body_json, state, attempts,
    next_attempt_at, lease_owner, lease_expires_at, created_at, updated_at)
VALUES {rows}
RETURNING id
"""
OUTBOX_ROW = (
    "(:phone_number_id, :phone_number, :source_id, :body_{n}, 'pending', 0, :now, :lease_owner,"
    " :lease_expires_at, :now, :now)"
)
PROCESSED = """
INSERT INTO processed_messages (message_id, phone_number_id, phone_number, outcome, outbox_ids,
    processed_at)
VALUES (:message_id, :phone_number_id, :phone_number, :outcome, :outbox_ids, :now)
"""
PROCESSED_FROM_OUTBOX = """
INSERT INTO processed_messages (message_id, phone_number_id, phone_number, outcome, outbox_ids,
    processed_at)
SELECT :message_id, :phone_number_id, :phone_number, :outcome,
       COALESCE(jsonb_agg(id ORDER BY id), '[]'::jsonb), :now
FROM queued
"""
_NAMED = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")


@dataclass(frozen=True, slots=True)
class Opened:
    """What a turn starts from: the dedupe record (if the message was handled before), the
    customer's conversation, and whether any of their replies wait unsent."""

    prior_outcome: str | None
    prior_outbox_ids: list[int]
    state: State | None
    created_at: datetime | None
    pending: bool


@dataclass(frozen=True, slots=True)
class Closing:
    """Everything a turn writes."""

    source_id: str
    record: bool  # whether to record source_id as processed (dedupe)
    outcome: str
    state: State | None
    context_json: str  # state.context as JSON, serialised once by the caller (its size is capped)
    result: ResultDraft | None
    bodies: Sequence[str]
    lease: Lease | None


def lock_customer(connection: Connection, lane: Lane) -> None:
    """Only the lock of open_turn: for other work on one customer (e.g. ending a conversation)."""
    parameters = {"phone_number_id": lane[0], "phone_number": lane[1]}
    if _is_postgres(connection):
        _postgres(connection, (LOCK,), parameters)
    else:
        connection.exec_driver_sql(LOCK, parameters)


def open_turn(
    connection: Connection, lane: Lane, source_id: str | None, lease_owner: str, now: datetime
) -> Opened:
    """Lock the customer (waiting for any turn of theirs in flight) and read what the turn needs.

    `pending` says whether replies of the customer's wait to be sent that `lease_owner` does not
    hold: new replies must queue behind those. Replies the caller already holds do not count,
    since it sends the new ones after them, in order.
    """
    postgres = _is_postgres(connection)
    parameters = {
        "phone_number_id": lane[0],
        "phone_number": lane[1],
        "message_id": source_id,
        "lease_owner": lease_owner,
        "now": _pg_time(now) if postgres else _sqlite_time(now),
    }
    if postgres:
        row = _postgres(connection, (LOCK, READ), parameters).one()
    else:
        connection.exec_driver_sql(LOCK, parameters)
        row = connection.exec_driver_sql(READ, parameters).one()
    outcome, outbox_ids, flow, version, step, context, history, last, expires, created, pending = (
        row
    )
    state = None
    if flow is not None:
        state = State(
            flow=flow,
            version=version,
            step=step,
            context=context if postgres else json.loads(context),
            history=history_from_json(history if postgres else json.loads(history)),
            expires_at=_read_time(expires),
            last_interaction=_read_time(last),
        )
    if outcome is not None and not postgres:
        outbox_ids = json.loads(outbox_ids)
    return Opened(
        prior_outcome=outcome,
        prior_outbox_ids=list(outbox_ids or ()),
        state=state,
        created_at=_read_time(created) if created is not None else None,
        pending=bool(pending),
    )


def close_turn(connection: Connection, lane: Lane, now: datetime, closing: Closing) -> list[int]:
    """Write the turn; returns the new outbox ids, in sending order."""
    postgres = _is_postgres(connection)
    time = _pg_time if postgres else _sqlite_time
    parameters: dict[str, Any] = {
        "phone_number_id": lane[0],
        "phone_number": lane[1],
        "source_id": closing.source_id,
        "message_id": closing.source_id,
        "outcome": closing.outcome,
        "now": time(now),
        "lease_owner": closing.lease.owner if closing.lease else None,
        "lease_expires_at": time(closing.lease.expires_at) if closing.lease else None,
    }
    state, result = closing.state, closing.result
    if state is not None:
        parameters |= {
            "flow": state.flow,
            "version": state.version,
            "step": state.step,
            "context": closing.context_json,
            "history": json.dumps(history_to_json(state.history), separators=(",", ":")),
            "last_interaction": time(state.last_interaction),
            "expires_at": time(state.expires_at),
        }
    if result is not None:
        parameters |= {
            "reference": result.reference,
            "result_template": result.template,
            "result_version": result.version,
            "result_context": json.dumps(dict(result.context), separators=(",", ":")),
        }
    for n, body in enumerate(closing.bodies):
        parameters[f"body_{n}"] = body
    shape = (state is not None, result is not None, len(closing.bodies), closing.record)
    if postgres:
        rows = _postgres(connection, (_postgres_close(*shape),), parameters)
        return [row[0] for row in rows] if closing.bodies else []
    connection.exec_driver_sql(SAVE if state is not None else REMOVE, parameters)
    if result is not None:
        connection.exec_driver_sql(RESULT, parameters)
    ids: list[int] = []
    if closing.bodies:
        found = connection.exec_driver_sql(_outbox(len(closing.bodies)), parameters)
        ids = sorted(row[0] for row in found)
    if closing.record:
        connection.exec_driver_sql(PROCESSED, parameters | {"outbox_ids": json.dumps(ids)})
    return ids


@lru_cache(maxsize=64)
def _outbox(messages: int) -> str:
    return OUTBOX.format(rows=",\n    ".join(OUTBOX_ROW.format(n=n) for n in range(messages)))


@lru_cache(maxsize=64)
def _postgres_close(has_state: bool, has_result: bool, messages: int, record: bool) -> str:
    """The turn's writes as one statement: each write a CTE; the new outbox ids its rows."""
    writes = [("conversation", SAVE if has_state else REMOVE)]
    if has_result:
        writes.append(("result", RESULT))
    if messages:
        writes.append(("queued", _outbox(messages)))
        if record:
            writes.append(("processed", PROCESSED_FROM_OUTBOX))
        main = "SELECT id FROM queued ORDER BY id"
    else:
        if record:
            writes.append(("processed", PROCESSED.replace(":outbox_ids", "'[]'")))
        main = writes.pop()[1]
    ctes = ", ".join(f"{name} AS ({sql})" for name, sql in writes)
    return (f"WITH {ctes}\n" if ctes else "") + main


def _postgres(
    connection: Connection, statements: tuple[str, ...], parameters: dict[str, Any]
) -> CursorResult[Any]:
    """Run `statements` in one round trip; the rows are the last one's.

    With prepared statements on (FLOWSVC_DB_PREPARED_STATEMENTS), each statement is prepared once
    per database connection and then only executed: PostgreSQL parsed these statements on every
    message otherwise (about a seventh of its CPU per message; each execution is still planned
    for its own values, see store.db).
    """
    if not connection.get_execution_options().get(PREPARED_STATEMENTS, False):
        return connection.exec_driver_sql(";".join(map(_named, statements)), parameters)
    prepared: set[str] = connection.connection.info.setdefault(PREPARED_STATEMENTS, set())
    forms = [_prepared(statement) for statement in statements]
    for form in forms:
        if form.name not in prepared:
            # One at a time, so that what is recorded is exactly what exists; a PREPARE outlives
            # a rollback: it belongs to the connection, not the transaction.
            connection.exec_driver_sql(form.prepare)
            prepared.add(form.name)
    return connection.exec_driver_sql(";".join(form.execute for form in forms), parameters)


@dataclass(frozen=True, slots=True)
class _Prepared:
    name: str
    prepare: str
    execute: str


@lru_cache(maxsize=256)
def _prepared(statement: str) -> _Prepared:
    """PREPARE and EXECUTE for a statement with `:name` parameters ($1... in order of use)."""
    names = list(dict.fromkeys(_NAMED.findall(statement)))
    positional = _NAMED.sub(lambda match: f"${names.index(match[1]) + 1}", statement)
    name = "menuflow_" + hashlib.sha256(statement.encode()).hexdigest()[:20]
    arguments = f"({', '.join(f'%({n})s' for n in names)})" if names else ""
    return _Prepared(name, f"PREPARE {name} AS {positional}", f"EXECUTE {name}{arguments}")


@lru_cache(maxsize=256)
def _named(statement: str) -> str:
    """`:name` parameters in psycopg2's `%(name)s` style."""
    return _NAMED.sub(r"%(\1)s", statement)


def _is_postgres(connection: Connection) -> bool:
    return connection.dialect.name == "postgresql"


def _read_time(value: datetime | str) -> datetime:
    if isinstance(value, str):  # SQLite
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _pg_time(value: datetime) -> datetime:
    return value


def _sqlite_time(value: datetime) -> str:
    """The text SQLAlchemy's DateTime stores on SQLite (naive UTC), so both read each other's."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
