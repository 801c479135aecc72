"""A conversation's handoff to people: set, slid on activity, cleared; the ones due back to the
bot; and the transcript of a conversation as recorded. Rare statements, beside a turn's own
writes (store.turns leaves the handoff columns as they are)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import func, literal, select, update
from sqlalchemy.orm import Session

from flowsvc.store.customers import Customer
from flowsvc.store.models import (
    ConversationState,
    Event,
    OutboxMessage,
    ProcessedMessage,
    UTCDateTime,
)
from flowsvc.store.times import read_time

MAX_TRANSCRIPT = 200  # entries in a handoff's transcript: the latest ones
# Dedupe records of requests by other services, not customers' messages (service.steering).
_REQUEST_PREFIXES = ("start:", "update:", "send:", "handoff:", "resume:")


def _whose(customer: Customer) -> Any:
    return (ConversationState.phone_number_id == customer[0]) & (
        ConversationState.phone_number == customer[1]
    )


def hand_off(
    session: Session,
    customer: Customer,
    queue: str,
    details: dict[str, Any],
    resume_at: datetime | None,
    since: datetime,
) -> None:
    """Pause the customer's conversation for people; it lives at least until `resume_at`."""
    values: dict[str, Any] = {
        "handoff_queue": queue,
        "handoff": details,
        "handoff_resume_at": resume_at,
        "handoff_at": since,
    }
    _update(session, customer, values, resume_at)


def touch(
    session: Session, customer: Customer, details: dict[str, Any], resume_at: datetime | None
) -> None:
    """Activity in a handoff (the customer wrote, an agent replied): the bot waits longer."""
    _update(session, customer, {"handoff": details, "handoff_resume_at": resume_at}, resume_at)


def clear(session: Session, customer: Customer) -> None:
    """The bot has the customer back."""
    session.execute(
        update(ConversationState)
        .where(_whose(customer))
        .values(handoff_queue=None, handoff=None, handoff_resume_at=None, handoff_at=None)
        .execution_options(synchronize_session=False)
    )


def _update(
    session: Session, customer: Customer, values: dict[str, Any], resume_at: datetime | None
) -> None:
    if resume_at is not None:
        # A paused conversation does not expire before the bot takes it back.
        greatest = func.max if session.get_bind().dialect.name == "sqlite" else func.greatest
        at = literal(resume_at, UTCDateTime())
        values["expires_at"] = greatest(ConversationState.expires_at, at)
    session.execute(
        update(ConversationState)
        .where(_whose(customer))
        .values(**values)
        .execution_options(synchronize_session=False)
    )


def queues(session: Session) -> list[tuple[str, int, datetime]]:
    """Per queue: how many customers are handed off to it, and since when the oldest."""
    rows = session.execute(
        select(
            ConversationState.handoff_queue,
            func.count(),
            func.min(ConversationState.handoff_at),
        )
        .where(ConversationState.handoff_queue.is_not(None))
        .group_by(ConversationState.handoff_queue)
        .order_by(ConversationState.handoff_queue)
    )
    return [(str(row[0]), row[1], _utc(row[2])) for row in rows]


def _utc(value: Any) -> datetime:
    # min() over a column comes back without the column's type on SQLite (text).
    return read_time(value)


def due(session: Session, now: datetime, limit: int) -> list[Customer]:
    """Handed-off customers whose handoff has idled past its time, oldest first."""
    rows = session.execute(
        select(ConversationState.phone_number_id, ConversationState.phone_number)
        .where(ConversationState.handoff_resume_at <= now)
        .order_by(ConversationState.handoff_resume_at)
        .limit(limit)
    )
    return [(row[0], row[1]) for row in rows]


def transcript(
    session: Session, customer: Customer, since: datetime, current: dict[str, str]
) -> list[dict[str, Any]]:
    """The conversation's messages since `since`, oldest first, as the database keeps them: the
    customer's (their ids, and what they typed or tapped where a step_entered or
    customer_message event recorded it) and the outbox's (their bodies)."""
    phone_number_id, phone_number = customer
    said = dict(current)  # this turn's input: its events are written at commit
    for payload in session.scalars(
        select(Event.payload).where(
            Event.phone_number_id == phone_number_id,
            Event.phone_number == phone_number,
            Event.type.in_(("step_entered", "customer_message")),
            Event.created_at >= since,
        )
    ):
        source = str(payload.get("source_id") or payload.get("message_id") or "")
        text = payload.get("input") or payload.get("text") or ""
        if source and text:
            said.setdefault(source, str(text))
    entries: list[tuple[datetime, int, dict[str, Any]]] = []
    for message_id, at in session.execute(
        select(ProcessedMessage.message_id, ProcessedMessage.processed_at).where(
            ProcessedMessage.phone_number_id == phone_number_id,
            ProcessedMessage.phone_number == phone_number,
            ProcessedMessage.processed_at >= since,
        )
    ):
        if message_id.startswith(_REQUEST_PREFIXES):
            continue
        entry = {"direction": "inbound", "message_id": message_id, "text": said.get(message_id, "")}
        entries.append((at, 0, entry))
    for id_, body, at in session.execute(
        select(OutboxMessage.id, OutboxMessage.body_json, OutboxMessage.created_at).where(
            OutboxMessage.phone_number_id == phone_number_id,
            OutboxMessage.phone_number == phone_number,
            OutboxMessage.created_at >= since,
        )
    ):
        entry = {"direction": "outbound", "message_id": str(id_), "text": _body_text(body)}
        entries.append((at, 1, entry))
    entries.sort(key=lambda item: (item[0], item[1], item[2]["message_id"]))
    return [
        {**entry, "time": at.isoformat().replace("+00:00", "Z")}
        for at, _, entry in entries[-MAX_TRANSCRIPT:]
    ]


def _body_text(body_json: str) -> str:
    try:
        body = json.loads(body_json)
    except ValueError:
        return ""
    kind = body.get("type")
    if kind == "text":
        return str(body.get("text", {}).get("body", ""))
    if kind == "interactive":
        return str(body.get("interactive", {}).get("body", {}).get("text", ""))
    if kind == "template":
        return f"(template {body.get('template', {}).get('name', '')})"
    return f"({kind})"
