"""Customers' turns in two round trips: lock and read, then write.

A call (HandleMessage(s), StartConversation) handles the turns of several customers at once: one
customer appears at most once among them, and they are locked in the order given, which the
caller keeps the same for every call, so that two calls never wait for each other's locks in a
cycle.

lock_and_read: take the customers' locks (store.customers), then read each turn's dedupe record,
       conversation and whether earlier replies are still pending. On PostgreSQL both statements
       go in one round trip but stay two statements: in READ COMMITTED a statement reads the
       snapshot taken when it starts, so a read in the same statement as the lock (a CTE) would
       miss a turn the lock waited for.
write: save or delete the conversations, store the results, queue the outbox rows and record the
       message ids; PostgreSQL in one statement, SQLite (one writer, held since BEGIN IMMEDIATE)
       statement by statement.

This is the hot path, so it is plain SQL on the Session's connection (the ORM's unit of work cost
more CPU than everything else in a message together); values are converted here, once per dialect.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from flowsvc.clock import utcnow
from flowsvc.engine import ResultDraft, State, history_from_json, history_to_json
from flowsvc.store import customers, events, prepared
from flowsvc.store.customers import LOCK, LOCK_MANY, Customer
from flowsvc.store.json_text import compact
from flowsvc.store.outbox import Lease
from flowsvc.store.times import read_time, sqlite_time
from flowsvc.store.turn_statements import (
    CLOSE_MANY,
    CLOSE_MANY_EVENTS,
    LANGUAGE,
    PROCESSED,
    READ,
    READ_MANY,
    REMOVE,
    RESULT,
    SAVE,
    close_one,
    outbox_insert,
)


@dataclass(frozen=True, slots=True)
class Opening:
    """A turn to open: the customer, the id to dedupe it by (None: never deduped), and for a
    customer's message, when they sent it (it opens Meta's customer service window)."""

    customer: Customer
    source_id: str | None
    inbound_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Opened:
    """What a turn starts from: the dedupe record (if the message was handled before), the
    customer's conversation, and whether any of their replies wait unsent."""

    prior_outcome: str | None
    prior_outbox_ids: list[int]
    state: State | None
    created_at: datetime | None
    pending: bool
    expired_at: datetime | None  # the customer's last conversation expired then and was swept
    revision: int  # the conversation's (0: none)
    turn: int  # this turn's number among the customer's: the revision a write of it stores
    last_inbound_at: datetime | None  # when the customer last wrote (None: never)
    handoff: dict[str, Any] | None = None  # set while the customer is handed off to people
    language: str | None = None  # the language the customer chose (None: none yet)


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
    forgets_expiry: bool = False  # the customer heard of the swept expiry: forget it
    revision: int = 0  # stored with the conversation (Opened.turn)
    keep: bool = False  # leave the conversation as it is (a message sent beside it)
    language: str | None = None  # the language the customer chose in this turn (None: as it was)

    @property
    def conversation(self) -> str:
        """What the turn does to the conversation row: "save", "remove" or "keep"."""
        if self.keep:
            return "keep"
        return "save" if self.state is not None else "remove"


def lock_and_read(
    connection: Connection, openings: Sequence[Opening], lease_owner: str, now: datetime
) -> list[Opened]:
    """Lock the customers, in the order given (waiting for any turn of theirs in flight), and read
    what each turn needs. A customer must appear at most once.

    `pending` says whether replies of the customer's wait to be sent that `lease_owner` does not
    hold: new replies must queue behind those. Replies the caller already holds do not count,
    since it sends the new ones after them, in order.
    """
    postgres = connection.dialect.name == "postgresql"
    if postgres and len(openings) > 1:
        parameters = {
            "phone_number_ids": prepared.texts(o.customer[0] for o in openings),
            "phone_numbers": prepared.texts(o.customer[1] for o in openings),
            "inbound_times": prepared.times(o.inbound_at for o in openings),
            "message_ids": prepared.texts(o.source_id for o in openings),
            "lease_owner": lease_owner,
            "now": now,
        }
        rows = prepared.run(connection, (LOCK_MANY, READ_MANY), parameters).all()
        return [_opened(row, postgres=True) for row in rows]
    opened = []
    for opening in openings:
        parameters = {
            "phone_number_id": opening.customer[0],
            "phone_number": opening.customer[1],
            "message_id": opening.source_id,
            "lease_owner": lease_owner,
            "now": now if postgres else sqlite_time(now),
            "inbound_at": _time(opening.inbound_at, postgres),
        }
        if postgres:
            row = prepared.run(connection, (LOCK, READ), parameters).one()
        else:
            connection.exec_driver_sql(LOCK, parameters)
            row = connection.exec_driver_sql(READ, parameters).one()
        opened.append(_opened(row, postgres=postgres))
    return opened


def _time(value: datetime | None, postgres: bool) -> datetime | str | None:
    return value if postgres or value is None else sqlite_time(value)


def _opened(row: Any, *, postgres: bool) -> Opened:
    (outcome, outbox_ids, flow, version, step, context, history, last, expires, created) = row[:10]
    expired, revision, turn, last_inbound, handoff, due, reminders, language, pending = row[10:]
    state = None
    if flow is not None:
        state = State(
            flow=flow,
            version=version,
            step=step,
            context=context if postgres else json.loads(context),
            history=history_from_json(history if postgres else json.loads(history)),
            expires_at=read_time(expires),
            last_interaction=read_time(last),
            silence_due_at=read_time(due) if due is not None else None,
            reminders=reminders or 0,
        )
    if outcome is not None and not postgres:
        outbox_ids = json.loads(outbox_ids)
    return Opened(
        prior_outcome=outcome,
        prior_outbox_ids=list(outbox_ids or ()),
        state=state,
        created_at=read_time(created) if created is not None else None,
        pending=bool(pending),
        expired_at=read_time(expired) if expired is not None else None,
        revision=revision or 0,
        turn=turn or 0,
        last_inbound_at=read_time(last_inbound) if last_inbound is not None else None,
        handoff=(handoff if postgres else json.loads(handoff)) if handoff is not None else None,
        language=language,
    )


@dataclass(frozen=True, slots=True)
class Written:
    """Each turn's new outbox ids, in sending order; the last event id the write gave (0: it
    wrote no events)."""

    ids: list[list[int]]
    last_event_id: int = 0


def write(
    connection: Connection,
    now: datetime,
    closings: Sequence[tuple[Customer, Closing]],
    drafts: Sequence[events.Draft] = (),
) -> Written:
    """Write the turns, and on PostgreSQL `drafts` with them, in the same statement: the
    transaction's last (store.events: nothing may follow it but COMMIT). A message_queued
    draft names its row by position among the turns' bodies (Draft.queued) and gets its id
    there, and their time is taken now, just before COMMIT, as store.events takes it. Other
    databases leave `drafts` to the caller."""
    # Rare (a customer's first message after their expired conversation was swept): a statement
    # of its own, so the hot statements stay as they are.
    customers.forget_expiry(connection, [c for c, closing in closings if closing.forgets_expiry])
    if connection.dialect.name != "postgresql":
        return Written([_write_sqlite(connection, c, now, closing) for c, closing in closings])
    if len(closings) == 1:
        customer, closing = closings[0]
        return _write_postgres_one(connection, customer, now, closing, drafts)
    return _write_postgres_many(connection, now, closings, drafts)


def _write_postgres_many(
    connection: Connection,
    now: datetime,
    closings: Sequence[tuple[Customer, Closing]],
    drafts: Sequence[events.Draft],
) -> Written:
    saved = [(who, c) for who, c in closings if c.conversation == "save"]
    removed = [who for who, c in closings if c.conversation == "remove"]
    results = [(who, c.result) for who, c in closings if c.result is not None]
    replies = [(who, c, body) for who, c in closings for body in c.bodies]
    recorded = [(who, c) for who, c in closings if c.record]
    spoken = [(who, c.language) for who, c in closings if c.language is not None]
    states = [c.state for _, c in saved if c.state]
    parameters: dict[str, Any] = {
        "now": now,
        "save_phone_number_ids": prepared.texts(who[0] for who, _ in saved),
        "save_phone_numbers": prepared.texts(who[1] for who, _ in saved),
        "flows": prepared.texts(state.flow for state in states),
        "versions": prepared.ints(state.version for state in states),
        "steps": prepared.texts(state.step for state in states),
        "contexts": [c.context_json for _, c in saved],
        "histories": [_history_json(state) for state in states],
        "last_interactions": prepared.times(state.last_interaction for state in states),
        "expires": prepared.times(state.expires_at for state in states),
        "revisions": prepared.ints(c.revision for _, c in saved),
        "silence_due_times": prepared.times(state.silence_due_at for state in states),
        "reminders": prepared.ints(state.reminders for state in states),
        "remove_phone_number_ids": prepared.texts(who[0] for who in removed),
        "remove_phone_numbers": prepared.texts(who[1] for who in removed),
        "references": prepared.texts(result.reference for _, result in results),
        "result_templates": prepared.texts(result.template for _, result in results),
        "result_versions": prepared.ints(result.version for _, result in results),
        "result_phone_number_ids": prepared.texts(who[0] for who, _ in results),
        "result_phone_numbers": prepared.texts(who[1] for who, _ in results),
        "result_contexts": [compact(dict(result.context)) for _, result in results],
        "outbox_phone_number_ids": prepared.texts(who[0] for who, _, _ in replies),
        "outbox_phone_numbers": prepared.texts(who[1] for who, _, _ in replies),
        "source_ids": prepared.texts(c.source_id for _, c, _ in replies),
        "bodies": [body for _, _, body in replies],
        "lease_owners": prepared.texts(c.lease.owner if c.lease else None for _, c, _ in replies),
        "lease_expiries": prepared.times(
            c.lease.expires_at if c.lease else None for _, c, _ in replies
        ),
        "processed_ids": prepared.texts(c.source_id for _, c in recorded),
        "processed_phone_number_ids": prepared.texts(who[0] for who, _ in recorded),
        "processed_phone_numbers": prepared.texts(who[1] for who, _ in recorded),
        "outcomes": prepared.texts(c.outcome for _, c in recorded),
        "language_phone_number_ids": prepared.texts(who[0] for who, _ in spoken),
        "language_phone_numbers": prepared.texts(who[1] for who, _ in spoken),
        "languages": prepared.texts(language for _, language in spoken),
    }
    ids: dict[str, list[int]] = {}
    last_event_id = 0
    if drafts:
        parameters |= events.pg_parameters(drafts, utcnow())
        for row in prepared.run(connection, (CLOSE_MANY_EVENTS,), parameters):
            last_event_id = row.last_id
            if row.id is not None:
                ids.setdefault(row.source_id, []).append(row.id)
    else:
        for row in prepared.run(connection, (CLOSE_MANY,), parameters):
            ids.setdefault(row.source_id, []).append(row.id)
    return Written(
        [ids.get(c.source_id, []) if c.bodies else [] for _, c in closings], last_event_id
    )


def _write_postgres_one(
    connection: Connection,
    customer: Customer,
    now: datetime,
    closing: Closing,
    drafts: Sequence[events.Draft],
) -> Written:
    parameters = _parameters(customer, now, closing, _as_is)
    shape = (closing.conversation, closing.result is not None, len(closing.bodies))
    language = closing.language is not None
    if not drafts:
        statement = close_one(*shape, closing.record, language=language)
        rows = prepared.run(connection, (statement,), parameters)
        return Written([[row[0] for row in rows] if closing.bodies else []])
    parameters |= events.pg_parameters(drafts, utcnow())
    statement = close_one(*shape, closing.record, events=True, language=language)
    found = prepared.run(connection, (statement,), parameters).all()
    return Written([[row[0] for row in found if row[0] is not None]], found[0].last_id)


def _write_sqlite(
    connection: Connection, customer: Customer, now: datetime, closing: Closing
) -> list[int]:
    parameters = _parameters(customer, now, closing, sqlite_time)
    if closing.conversation != "keep":
        connection.exec_driver_sql(SAVE if closing.state is not None else REMOVE, parameters)
    if closing.language is not None:
        connection.exec_driver_sql(LANGUAGE, parameters)
    if closing.result is not None:
        connection.exec_driver_sql(RESULT, parameters)
    ids: list[int] = []
    if closing.bodies:
        found = connection.exec_driver_sql(outbox_insert(len(closing.bodies)), parameters)
        ids = sorted(row[0] for row in found)
    if closing.record:
        connection.exec_driver_sql(PROCESSED, parameters | {"outbox_ids": json.dumps(ids)})
    return ids


def _parameters(
    customer: Customer, now: datetime, closing: Closing, time: Callable[[datetime], Any]
) -> dict[str, Any]:
    """One turn's writes as the parameters of the one-turn statements."""
    parameters: dict[str, Any] = {
        "phone_number_id": customer[0],
        "phone_number": customer[1],
        "source_id": closing.source_id,
        "message_id": closing.source_id,
        "outcome": closing.outcome,
        "now": time(now),
        "lease_owner": closing.lease.owner if closing.lease else None,
        "lease_expires_at": time(closing.lease.expires_at) if closing.lease else None,
        "language": closing.language,
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
            "revision": closing.revision,
            "silence_due_at": time(state.silence_due_at) if state.silence_due_at else None,
            "reminders": state.reminders,
        }
    if result is not None:
        parameters |= {
            "reference": result.reference,
            "result_template": result.template,
            "result_version": result.version,
            "result_context": compact(dict(result.context)),
        }
    for n, body in enumerate(closing.bodies):
        parameters[f"body_{n}"] = body
    return parameters


def _history_json(state: State) -> str:
    return compact(history_to_json(state.history))


def _as_is(value: datetime) -> datetime:
    return value
