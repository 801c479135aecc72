"""What handing off, a handed-off customer's message, an agent's reply and a resume write beside
their turn (store.handoffs: the handoff columns the turn's own save leaves alone), and the events
that say so: handoff_requested (with the transcript), customer_message, handoff_resumed."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from flowsvc.engine import Decision, EngineConfig, Outcome
from flowsvc.service.handoff import SLACK, read_time, resume_at, time_text
from flowsvc.service.turns import HandOffTurn, MessageTurn, ResumeTurn, SendTurn, StartTurn, Turn
from flowsvc.store import handoffs, turns
from flowsvc.store.events import Draft


def quiet(turn: Turn, opened: turns.Opened, decision: Decision) -> bool:
    """Whether `after` would write nothing and record nothing for this turn (a customer with the
    bot whose turn hands nothing off): the turn's write may then be its transaction's last."""
    return (
        opened.handoff is None
        and decision.handoff is None
        and not isinstance(turn, (HandOffTurn, ResumeTurn))
    )


def after(
    session: Session,
    turn: Turn,
    opened: turns.Opened,
    decision: Decision,
    now: datetime,
    config: EngineConfig,
) -> tuple[list[Draft], dict[str, Any] | None]:
    """What a turn changes about a handoff beside its own writes: the events that say so, and
    the customer's handoff after the turn (None: with the bot)."""
    customer = turn.customer
    details = opened.handoff
    queue = str((details or {}).get("queue", ""))
    state = decision.state or opened.state

    def of(type_: str, **payload: Any) -> Draft:
        name, version = (state.flow, state.version) if state is not None else ("", 0)
        return Draft(type_, customer, name, version, dict(payload))

    if isinstance(turn, HandOffTurn) and details is None:
        return _start(
            session,
            turn,
            opened,
            now,
            config,
            of,
            queue=turn.queue,
            reason=turn.reason,
            priority=turn.priority,
            until=turn.until,
            resume_text=None,
            from_template=False,
            step=opened.state.step if opened.state is not None else "",
        )
    if isinstance(turn, ResumeTurn):
        if decision.outcome == Outcome.IGNORED:
            return [], details
        handoffs.clear(session, customer)
        step = decision.state.step if decision.state is not None else ""
        why = "idle" if turn.idle else "Resume"
        return [of("handoff_resumed", queue=queue, reason=why, step=step)], None
    if isinstance(turn, MessageTurn) and details is not None:
        if decision.outcome == Outcome.HANDED_OFF:
            slid = _slide(session, customer, details, now, config)
            content = dict(turn.content)
            message = of("customer_message", message_id=turn.message_id, queue=queue, **content)
            return [message], slid
        if decision.outcome != Outcome.IGNORED:
            handoffs.clear(session, customer)  # the customer left the queue (or it expired)
            step = decision.state.step if decision.state is not None else ""
            return [of("handoff_resumed", queue=queue, reason="customer", step=step)], None
        return [], details
    if isinstance(turn, SendTurn) and details is not None:
        return [], _slide(session, customer, details, now, config)
    if isinstance(turn, StartTurn) and details is not None:
        handoffs.clear(session, customer)
        return [], None
    spec = decision.handoff
    if spec is not None and decision.state is not None and details is None:
        return _start(
            session,
            turn,
            opened,
            now,
            config,
            of,
            queue=spec.queue or config.handoff_default_queue,
            reason=spec.reason,
            priority=spec.priority,
            until=None,
            resume_text=spec.resume_text,
            from_template=True,
            step=decision.state.step,
        )
    return [], details if decision.state is not None else None


def _start(
    session: Session,
    turn: Turn,
    opened: turns.Opened,
    now: datetime,
    config: EngineConfig,
    of: Any,
    *,
    queue: str,
    reason: str,
    priority: int,
    until: datetime | None,
    resume_text: str | None,
    from_template: bool,
    step: str = "",
) -> tuple[list[Draft], dict[str, Any]]:
    due = resume_at(config, now, until)
    details = {
        "queue": queue,
        "reason": reason,
        "priority": priority,
        "since": time_text(now),
        "until": time_text(until),
        "resume_at": time_text(due),
        "resume_text": resume_text,
    }
    handoffs.hand_off(session, turn.customer, queue, details, due, now)
    current: dict[str, str] = {}
    if isinstance(turn, MessageTurn):
        said = turn.inbound.selection_id or turn.inbound.text or ""
        if said:
            current[turn.message_id] = said
    # The conversation's created_at is the database's clock, the messages' times flowsvc's: a
    # second's slack keeps the message that started it.
    since = (opened.created_at if opened.state is not None and opened.created_at else now) - SLACK
    draft: Draft = of(
        "handoff_requested",
        queue=queue,
        reason=reason,
        priority=priority,
        step=step,
        transcript=handoffs.transcript(session, turn.customer, since, current),
        from_template=from_template,
    )
    return [draft], details


def _slide(
    session: Session,
    customer: tuple[str, str],
    details: Mapping[str, Any],
    now: datetime,
    config: EngineConfig,
) -> dict[str, Any]:
    due = resume_at(config, now, read_time(details.get("until")))
    slid = {**details, "resume_at": time_text(due)}
    handoffs.touch(session, customer, slid, due)
    return slid
