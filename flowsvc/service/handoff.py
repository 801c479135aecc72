"""Handing a customer to people and back: HandOff's and Resume's requests and the rules their
turns follow, and what a handed-off customer's message does (nothing but an event, unless it is a
leave word). What they write beside their turn, and the events: service.handoff_writes.

A handoff pauses the conversation, it does not end it: the flow, step and context stay, the bot
answers nothing, and every message the customer writes reaches the agents as a customer_message
event, in order. The bot takes the customer back on Resume, after FLOWSVC_HANDOFF_IDLE_MINUTES
without activity (the sweep), or when the customer writes a leave word the business allows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from flowsvc.engine import Catalog, Decision, EngineConfig, Outcome, State
from flowsvc.engine.keywords import phrase
from flowsvc.engine.messages import LANGUAGE_KEY
from flowsvc.errors import Aborted, FailedPrecondition, InvalidArgument, NotFound
from flowsvc.service import window
from flowsvc.service.inbound import MAX_TEXT_CHARS
from flowsvc.service.outbound import FreeForm
from flowsvc.service.turns import (
    HandOffTurn,
    MessageTurn,
    ResumeTurn,
)
from flowsvc.store import turns
from flowsvc.validation.handoff import MAX_PRIORITY, MAX_QUEUE, MAX_REASON

SLACK = timedelta(seconds=1)


@dataclass(frozen=True)
class HandOffRequest:
    """HandOff: pause a customer's conversation for people."""

    phone_number_id: str
    phone_number: str
    reason: str = ""
    queue: str = ""
    priority: int = 0
    until: datetime | None = None
    text: str = ""
    request_id: str = ""


@dataclass(frozen=True)
class ResumeRequest:
    """Resume: give a handed-off customer back to the bot, where the agent says."""

    phone_number_id: str
    phone_number: str
    step: str = ""
    flow: str = ""
    end: bool = False
    context: Mapping[str, Any] | None = None
    text: str = ""
    expected_revision: int = 0
    request_id: str = ""


def hand_off_turn(request: HandOffRequest, config: EngineConfig) -> HandOffTurn:
    from flowsvc.service import steering  # steering imports the turns this module builds

    problems = steering.common_problems(
        request.phone_number_id, request.phone_number, request.request_id, None
    )
    if len(request.queue) > MAX_QUEUE:
        problems.append(("queue", f"at most {MAX_QUEUE} characters"))
    if len(request.reason) > MAX_REASON:
        problems.append(("reason", f"at most {MAX_REASON} characters"))
    if not 0 <= request.priority <= MAX_PRIORITY:
        problems.append(("priority", f"0-{MAX_PRIORITY}"))
    if len(request.text) > MAX_TEXT_CHARS:
        problems.append(("text", f"at most {MAX_TEXT_CHARS} characters"))
    if problems:
        raise InvalidArgument("bad handoff", problems)
    return HandOffTurn(
        customer=(request.phone_number_id, request.phone_number),
        source_id=steering.source_id("handoff", request.request_id),
        dedupe=bool(request.request_id),
        reason=request.reason,
        queue=request.queue or config.handoff_default_queue,
        priority=request.priority,
        until=request.until,
        text=request.text,
    )


def resume_turn(request: ResumeRequest) -> ResumeTurn:
    from flowsvc.service import steering

    problems = steering.common_problems(
        request.phone_number_id, request.phone_number, request.request_id, None
    )
    if request.end and (request.step or request.flow):
        problems.append(("end", "either end the conversation or name a step or flow, not both"))
    if request.expected_revision < 0:
        problems.append(("expected_revision", "must not be negative (0: no check)"))
    if len(request.text) > MAX_TEXT_CHARS:
        problems.append(("text", f"at most {MAX_TEXT_CHARS} characters"))
    if problems:
        raise InvalidArgument("bad resume", problems)
    return ResumeTurn(
        customer=(request.phone_number_id, request.phone_number),
        source_id=steering.source_id("resume", request.request_id),
        dedupe=bool(request.request_id),
        step=request.step,
        flow=request.flow,
        end=request.end,
        context=dict(request.context or {}),
        text=request.text,
        expected_revision=request.expected_revision,
    )


def idle_turn(customer: tuple[str, str], config: EngineConfig, now: datetime) -> ResumeTurn:
    """The sweep's resume of a handoff that idled past its time."""
    return ResumeTurn(
        customer=customer,
        source_id=f"resume:idle:{now.isoformat()}",
        dedupe=False,
        step="",
        flow="",
        end=False,
        context={},
        text="",
        idle=True,
    )


def resume_at(config: EngineConfig, now: datetime, until: datetime | None) -> datetime | None:
    """When the bot takes a handed-off customer back unless there is activity before."""
    if config.handoff_idle is None:
        return None
    return max(now + config.handoff_idle, until or now)


def time_text(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def read_time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def handoff_resume_at(details: Mapping[str, Any]) -> datetime | None:
    return read_time(details.get("resume_at"))


# ---------------------------------------------------------------------------------------------
# Decisions


def hand_off_decision(turn: HandOffTurn, opened: turns.Opened, now: datetime) -> Decision:
    """HandOff: NOT_FOUND without an active conversation; the text (if any) to send."""
    state = opened.state
    if state is None or state.expires_at <= now:
        raise NotFound("the customer has no active conversation to hand off")
    if opened.handoff is not None:
        return Decision(Outcome.IGNORED, state, ())  # the handoff they have stands
    said = FreeForm(text=turn.text).body(turn.customer[1], state.context)
    messages = (said,) if turn.text else ()
    if messages and not window.is_open(opened.last_inbound_at, now):
        raise window.closed(opened.last_inbound_at)
    return Decision(Outcome.HANDED_OFF, state, messages)


def paused(
    turn: MessageTurn, opened: turns.Opened, now: datetime, config: EngineConfig
) -> Decision | None:
    """A handed-off customer's message: recorded and answered by nothing (None: the bot handles
    it, because the customer is not handed off, or left the queue with a leave word)."""
    state = opened.state
    if opened.handoff is None or state is None or state.expires_at <= now:
        return None
    if turn.inbound.unsupported_type in config.silent_types:
        return Decision(Outcome.IGNORED, state, ())
    text = turn.inbound.text
    spoken = state.context.get(LANGUAGE_KEY) or opened.language
    if text is not None and phrase(text) in {phrase(w) for w in config.leave_words(spoken)}:
        return None
    return Decision(Outcome.HANDED_OFF, state, ())


def resumable(turn: ResumeTurn, opened: turns.Opened, now: datetime) -> State | None:
    """The conversation a resume takes back: NOT_FOUND without one, ABORTED at another revision,
    FAILED_PRECONDITION when it is not handed off. None: the sweep's resume is no longer due."""
    state = opened.state
    if turn.idle:
        due = handoff_resume_at(opened.handoff or {})
        if state is None or opened.handoff is None or due is None or due > now:
            return None
        return state
    if state is None or state.expires_at <= now:
        raise NotFound("the customer has no active conversation")
    if turn.expected_revision and turn.expected_revision != opened.revision:
        raise Aborted(
            f"the conversation is at revision {opened.revision}, not {turn.expected_revision}: "
            "it changed since it was read (another agent may have resumed it); read it again"
        )
    if opened.handoff is None:
        raise FailedPrecondition(
            "the customer is not handed off: the bot has their conversation already "
            "(UpdateConversation steers it)"
        )
    return state


def resume_target(
    turn: ResumeTurn, catalog: Catalog, state: State, config: EngineConfig
) -> ResumeTurn:
    """Where the bot takes the customer: as asked, else the default template (the main menu),
    else the step the conversation waits in."""
    if turn.step or turn.flow or turn.end:
        return turn
    default = config.default_template
    template = catalog.current(default) if default else None
    if template is not None and template.is_active:
        return replace(turn, flow=template.name)
    return turn


def resume_text(turn: ResumeTurn, opened: turns.Opened, config: EngineConfig) -> str:
    if not turn.idle:
        return turn.text
    said = (opened.handoff or {}).get("resume_text")
    if isinstance(said, str) and said:
        return said
    spoken = opened.state.context.get(LANGUAGE_KEY) if opened.state is not None else None
    return config.text(spoken or opened.language, "handoff_resume")


def resumed(
    turn: ResumeTurn, decision: Decision, opened: turns.Opened, now: datetime, text: str
) -> Decision:
    """A resume's messages: its text first, then the step's; outside the service window the
    agent's resume is refused (say it with a message template through SendMessage first),
    while the sweep's goes silently."""
    to = turn.customer[1]
    state = decision.state or opened.state
    said = FreeForm(text=text).body(to, state.context if state is not None else {})
    messages = ((said,) if text else ()) + decision.messages
    decision = replace(decision, messages=messages, handoff=None)
    if messages and not window.is_open(opened.last_inbound_at, now):
        if turn.idle:
            return replace(decision, messages=())
        raise window.closed(opened.last_inbound_at, handed_off=True)
    return decision
