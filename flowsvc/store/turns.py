"""Customers' turns (HandleMessage(s), StartConversation) in two round trips: open, then close.

A call opens and closes the turns of several customers at once (HandleMessages): one customer
appears at most once among them, and they are locked in the order given, which the caller keeps
the same for every call, so that two calls never wait for each other's locks in a cycle.

open:  lock the customers' rows, then read each turn's dedupe record, conversation and whether
       earlier replies are still pending. On PostgreSQL both statements go in one round trip but
       stay two statements: in READ COMMITTED a statement reads the snapshot taken when it starts,
       so a read in the same statement as the lock (a CTE) would miss a turn the lock waited for.
close: save or delete the conversations, store the results, queue the outbox rows and record the
       message ids. PostgreSQL runs all of it as one statement (data-modifying CTEs: for several
       turns over arrays, one row per turn or reply, the same statement whatever their number);
       SQLite (one writer, held since BEGIN IMMEDIATE) runs the statements turn by turn.

This is the hot path, so it is plain SQL on the Session's connection (the ORM's unit of work cost
more CPU than everything else in a message together); values are converted here, once per dialect.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, CursorResult

from flowsvc.engine import ResultDraft, State, history_from_json, history_to_json
from flowsvc.store.db import PREPARED_STATEMENTS
from flowsvc.store.outbox import Lane, Lease

# One turn (SQLite: statement by statement; PostgreSQL: open in one round trip, close in one
# statement built from these, see _postgres_close).
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
# PostgreSQL, several turns: each statement runs once for all of them, the turns as arrays. (For a
# single turn the statements above cost PostgreSQL less to plan: 0.71 vs 1.29 ms per message.)
LOCK_MANY = """
INSERT INTO customers (phone_number_id, phone_number)
SELECT * FROM unnest(:phone_number_ids::text[], :phone_numbers::text[])
ON CONFLICT (phone_number_id, phone_number) DO UPDATE SET phone_number = excluded.phone_number
"""
READ_MANY = """
SELECT p.outcome, p.outbox_ids,
       c.conversation_flow, c.template_version, c.current_step, c.context, c.history,
       c.last_interaction, c.expires_at, c.created_at,
       EXISTS (SELECT 1 FROM outbox o WHERE o.phone_number_id = t.phone_number_id
               AND o.phone_number = t.phone_number AND o.state = 'pending'
               AND NOT COALESCE(o.lease_owner = :lease_owner AND o.lease_expires_at > :now,
                                FALSE)) AS pending
FROM unnest(:phone_number_ids::text[], :phone_numbers::text[], :message_ids::text[])
     WITH ORDINALITY AS t(phone_number_id, phone_number, message_id, n)
LEFT JOIN processed_messages p ON p.message_id = t.message_id
LEFT JOIN conversation_state c
       ON c.phone_number_id = t.phone_number_id AND c.phone_number = t.phone_number
ORDER BY t.n
"""
CLOSE_MANY = """
WITH saved AS (
    INSERT INTO conversation_state (phone_number_id, phone_number, conversation_flow,
        template_version, current_step, context, history, last_interaction, expires_at)
    SELECT s.phone_number_id, s.phone_number, s.flow, s.version, s.step, s.context::jsonb,
           s.history::jsonb, s.last_interaction, s.expires_at
    FROM unnest(:save_phone_number_ids::text[], :save_phone_numbers::text[], :flows::text[],
                :versions::int[], :steps::text[], :contexts::text[], :histories::text[],
                :last_interactions::timestamptz[], :expires::timestamptz[])
         AS s(phone_number_id, phone_number, flow, version, step, context, history,
              last_interaction, expires_at)
    ON CONFLICT (phone_number_id, phone_number) DO UPDATE SET
        conversation_flow = excluded.conversation_flow,
        template_version = excluded.template_version, current_step = excluded.current_step,
        context = excluded.context, history = excluded.history,
        last_interaction = excluded.last_interaction, expires_at = excluded.expires_at
), removed AS (
    DELETE FROM conversation_state c
    USING unnest(:remove_phone_number_ids::text[], :remove_phone_numbers::text[])
          AS r(phone_number_id, phone_number)
    WHERE c.phone_number_id = r.phone_number_id AND c.phone_number = r.phone_number
), stored AS (
    INSERT INTO flow_results (reference, template_name, template_version, phone_number_id,
        phone_number, context, created_at)
    SELECT r.reference, r.template_name, r.version, r.phone_number_id, r.phone_number,
           r.context::jsonb, :now
    FROM unnest(:references::text[], :result_templates::text[], :result_versions::int[],
                :result_phone_number_ids::text[], :result_phone_numbers::text[],
                :result_contexts::text[])
         AS r(reference, template_name, version, phone_number_id, phone_number, context)
), queued AS (
    INSERT INTO outbox (phone_number_id, phone_number, source_id, body_json, state, attempts,
        next_attempt_at, lease_owner, lease_expires_at, created_at, updated_at)
    SELECT q.phone_number_id, q.phone_number, q.source_id, q.body, 'pending', 0, :now,
           q.lease_owner, q.lease_expires_at, :now, :now
    FROM unnest(:outbox_phone_number_ids::text[], :outbox_phone_numbers::text[],
                :source_ids::text[], :bodies::text[], :lease_owners::text[],
                :lease_expiries::timestamptz[]) WITH ORDINALITY
         AS q(phone_number_id, phone_number, source_id, body, lease_owner, lease_expires_at, n)
    ORDER BY q.n
    RETURNING id, source_id
), processed AS (
    INSERT INTO processed_messages (message_id, phone_number_id, phone_number, outcome,
        outbox_ids, processed_at)
    SELECT p.message_id, p.phone_number_id, p.phone_number, p.outcome,
           COALESCE((SELECT jsonb_agg(q.id ORDER BY q.id) FROM queued q
                     WHERE q.source_id = p.message_id), '[]'::jsonb), :now
    FROM unnest(:processed_ids::text[], :processed_phone_number_ids::text[],
                :processed_phone_numbers::text[], :outcomes::text[])
         AS p(message_id, phone_number_id, phone_number, outcome)
)
SELECT id, source_id FROM queued ORDER BY id
"""
# A parameter, and the cast it is written with (an array's type: an empty or all-NULL array has
# none of its own).
_NAMED = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)(::[a-z]+\[\])?")


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


@dataclass(frozen=True, slots=True)
class Opening:
    """A turn to open: the customer, and the id to dedupe it by (None: never deduped)."""

    lane: Lane
    source_id: str | None


def lock_customer(connection: Connection, lane: Lane) -> None:
    """Only the lock of open_turns: for other work on one customer (e.g. ending a conversation)."""
    parameters = {"phone_number_id": lane[0], "phone_number": lane[1]}
    if _is_postgres(connection):
        _postgres(connection, (LOCK,), parameters)
    else:
        connection.exec_driver_sql(LOCK, parameters)


def open_turns(
    connection: Connection, openings: Sequence[Opening], lease_owner: str, now: datetime
) -> list[Opened]:
    """Lock the customers, in the order given (waiting for any turn of theirs in flight), and read
    what each turn needs. A customer must appear at most once.

    `pending` says whether replies of the customer's wait to be sent that `lease_owner` does not
    hold: new replies must queue behind those. Replies the caller already holds do not count,
    since it sends the new ones after them, in order.
    """
    postgres = _is_postgres(connection)
    if postgres and len(openings) > 1:
        parameters = {
            "phone_number_ids": [o.lane[0] for o in openings],
            "phone_numbers": [o.lane[1] for o in openings],
            "message_ids": [o.source_id for o in openings],
            "lease_owner": lease_owner,
            "now": now,
        }
        rows = _postgres(connection, (LOCK_MANY, READ_MANY), parameters).all()
        return [_opened(row, postgres=True) for row in rows]
    opened = []
    for opening in openings:
        parameters = {
            "phone_number_id": opening.lane[0],
            "phone_number": opening.lane[1],
            "message_id": opening.source_id,
            "lease_owner": lease_owner,
            "now": now if postgres else _sqlite_time(now),
        }
        if postgres:
            row = _postgres(connection, (LOCK, READ), parameters).one()
        else:
            connection.exec_driver_sql(LOCK, parameters)
            row = connection.exec_driver_sql(READ, parameters).one()
        opened.append(_opened(row, postgres=postgres))
    return opened


def _opened(row: Any, *, postgres: bool) -> Opened:
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


def close_turns(
    connection: Connection, now: datetime, closings: Sequence[tuple[Lane, Closing]]
) -> list[list[int]]:
    """Write the turns; returns each turn's new outbox ids, in sending order."""
    if not _is_postgres(connection):
        return [_close_sqlite(connection, lane, now, closing) for lane, closing in closings]
    if len(closings) == 1:
        [(lane, closing)] = closings
        return [_close_postgres_one(connection, lane, now, closing)]
    return _close_postgres(connection, now, closings)


def _close_postgres(
    connection: Connection, now: datetime, closings: Sequence[tuple[Lane, Closing]]
) -> list[list[int]]:
    saved = [(lane, c.context_json, c.state) for lane, c in closings if c.state is not None]
    removed = [lane for lane, c in closings if c.state is None]
    results = [(lane, c.result) for lane, c in closings if c.result is not None]
    replies = [(lane, c, body) for lane, c in closings for body in c.bodies]
    recorded = [(lane, c) for lane, c in closings if c.record]
    parameters: dict[str, Any] = {
        "now": now,
        "save_phone_number_ids": [lane[0] for lane, _, _ in saved],
        "save_phone_numbers": [lane[1] for lane, _, _ in saved],
        "flows": [state.flow for _, _, state in saved],
        "versions": [state.version for _, _, state in saved],
        "steps": [state.step for _, _, state in saved],
        "contexts": [context for _, context, _ in saved],
        "histories": [_history_json(state) for _, _, state in saved],
        "last_interactions": [state.last_interaction for _, _, state in saved],
        "expires": [state.expires_at for _, _, state in saved],
        "remove_phone_number_ids": [lane[0] for lane in removed],
        "remove_phone_numbers": [lane[1] for lane in removed],
        "references": [result.reference for _, result in results],
        "result_templates": [result.template for _, result in results],
        "result_versions": [result.version for _, result in results],
        "result_phone_number_ids": [lane[0] for lane, _ in results],
        "result_phone_numbers": [lane[1] for lane, _ in results],
        "result_contexts": [_json(dict(result.context)) for _, result in results],
        "outbox_phone_number_ids": [lane[0] for lane, _, _ in replies],
        "outbox_phone_numbers": [lane[1] for lane, _, _ in replies],
        "source_ids": [c.source_id for _, c, _ in replies],
        "bodies": [body for _, _, body in replies],
        "lease_owners": [c.lease.owner if c.lease else None for _, c, _ in replies],
        "lease_expiries": [c.lease.expires_at if c.lease else None for _, c, _ in replies],
        "processed_ids": [c.source_id for _, c in recorded],
        "processed_phone_number_ids": [lane[0] for lane, _ in recorded],
        "processed_phone_numbers": [lane[1] for lane, _ in recorded],
        "outcomes": [c.outcome for _, c in recorded],
    }
    ids: dict[str, list[int]] = {}
    for id_, source_id in _postgres(connection, (CLOSE_MANY,), parameters):
        ids.setdefault(source_id, []).append(id_)
    return [ids.get(c.source_id, []) if c.bodies else [] for _, c in closings]


def _close_postgres_one(
    connection: Connection, lane: Lane, now: datetime, closing: Closing
) -> list[int]:
    parameters = _close_parameters(lane, now, closing, _same_time)
    shape = (closing.state is not None, closing.result is not None, len(closing.bodies))
    rows = _postgres(connection, (_postgres_close(*shape, closing.record),), parameters)
    return [row[0] for row in rows] if closing.bodies else []


def _close_sqlite(connection: Connection, lane: Lane, now: datetime, closing: Closing) -> list[int]:
    parameters = _close_parameters(lane, now, closing, _sqlite_time)
    connection.exec_driver_sql(SAVE if closing.state is not None else REMOVE, parameters)
    if closing.result is not None:
        connection.exec_driver_sql(RESULT, parameters)
    ids: list[int] = []
    if closing.bodies:
        found = connection.exec_driver_sql(_outbox(len(closing.bodies)), parameters)
        ids = sorted(row[0] for row in found)
    if closing.record:
        connection.exec_driver_sql(PROCESSED, parameters | {"outbox_ids": json.dumps(ids)})
    return ids


def _close_parameters(
    lane: Lane, now: datetime, closing: Closing, time: Callable[[datetime], Any]
) -> dict[str, Any]:
    """One turn's writes as the parameters of the one-turn statements."""
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
            "history": _history_json(state),
            "last_interaction": time(state.last_interaction),
            "expires_at": time(state.expires_at),
        }
    if result is not None:
        parameters |= {
            "reference": result.reference,
            "result_template": result.template,
            "result_version": result.version,
            "result_context": _json(dict(result.context)),
        }
    for n, body in enumerate(closing.bodies):
        parameters[f"body_{n}"] = body
    return parameters


def _history_json(state: State) -> str:
    return _json(history_to_json(state.history))


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


@lru_cache(maxsize=64)
def _outbox(messages: int) -> str:
    return OUTBOX.format(rows=",\n    ".join(OUTBOX_ROW.format(n=n) for n in range(messages)))


@lru_cache(maxsize=64)
def _postgres_close(has_state: bool, has_result: bool, messages: int, record: bool) -> str:
    """One turn's writes as one statement: each write a CTE; the new outbox ids its rows."""
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
    """PREPARE and EXECUTE for a statement with `:name` parameters ($1... in order of first use);
    an argument keeps the cast the statement writes it with."""
    casts: dict[str, str] = {}
    for match in _NAMED.finditer(statement):
        casts.setdefault(match[1], match[2] or "")
    names = list(casts)
    positional = _NAMED.sub(lambda m: f"${names.index(m[1]) + 1}{m[2] or ''}", statement)
    name = "menuflow_" + hashlib.sha256(statement.encode()).hexdigest()[:20]
    arguments = ", ".join(f"%({n})s{casts[n]}" for n in names)
    return _Prepared(
        name,
        f"PREPARE {name} AS {positional}",
        f"EXECUTE {name}({arguments})" if names else f"EXECUTE {name}",
    )


@lru_cache(maxsize=256)
def _named(statement: str) -> str:
    """`:name` parameters in psycopg2's `%(name)s` style."""
    return _NAMED.sub(lambda m: f"%({m[1]})s{m[2] or ''}", statement)


def _is_postgres(connection: Connection) -> bool:
    return connection.dialect.name == "postgresql"


def _read_time(value: datetime | str) -> datetime:
    if isinstance(value, str):  # SQLite
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _same_time(value: datetime) -> datetime:
    return value


def _sqlite_time(value: datetime) -> str:
    """The text SQLAlchemy's DateTime stores on SQLite (naive UTC), so both read each other's."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
