"""Conversations other services steer: UpdateConversation's and SendMessage's requests and the
rules their turns follow, and the window rule every business-initiated turn follows.

Both run as turns (service.handling), under the customer's lock like a customer's message, so
they fall in order with the customer's own messages and their replies: an update's revision check
sees every turn before it, and a sent message is queued behind the bot's earlier replies.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from flowsvc.engine import Catalog, Decision, Outcome, State, Template
from flowsvc.engine.message_templates import MessageTemplate, template_message
from flowsvc.engine.template import INITIAL
from flowsvc.errors import Aborted, FailedPrecondition, InvalidArgument, NotFound
from flowsvc.service import window
from flowsvc.service.inbound import check_customer
from flowsvc.service.outbound import check_template, free_form
from flowsvc.service.turns import (
    CallResultTurn,
    MessageTurn,
    ResumeTurn,
    SendTurn,
    StartTurn,
    Turn,
    UpdateTurn,
)
from flowsvc.store import turns

MAX_REQUEST_ID = 200
MAX_AGENT = 100


@dataclass(frozen=True)
class UpdateRequest:
    """UpdateConversation: merge `context`, move to `step` (or `flow`), optionally guarded."""

    phone_number_id: str
    phone_number: str
    context: Mapping[str, Any]
    step: str = ""
    flow: str = ""
    expected_revision: int = 0
    send: bool = False
    message_template: MessageTemplate | None = None
    request_id: str = ""


@dataclass(frozen=True)
class SendRequest:
    """SendMessage: a free-form text or interactive message, and/or a Meta message template."""

    phone_number_id: str
    phone_number: str
    text: str | None = None
    interactive: Mapping[str, Any] | None = None
    message_template: MessageTemplate | None = None
    request_id: str = ""
    agent: str = ""  # who sends it, for a handed-off customer


def source_id(kind: str, request_id: str) -> str:
    """What a turn's dedupe record is keyed by: without a request id, never deduped."""
    return f"{kind}:{request_id or secrets.token_hex(8)}"


def common_problems(
    phone_number_id: str,
    phone_number: str,
    request_id: str,
    template: MessageTemplate | None,
) -> list[tuple[str, str]]:
    problems = check_customer(phone_number_id, phone_number)
    if len(request_id) > MAX_REQUEST_ID:
        problems.append(("request_id", f"at most {MAX_REQUEST_ID} characters"))
    if template is not None:
        problems += check_template(template, "template")
    return problems


def update_turn(request: UpdateRequest) -> UpdateTurn:
    problems = common_problems(
        request.phone_number_id, request.phone_number, request.request_id, request.message_template
    )
    if request.expected_revision < 0:
        problems.append(("expected_revision", "must not be negative (0: no check)"))
    if not (request.context or request.step or request.flow or request.send):
        problems.append(("step", "say what to do: merge context, move to a step or flow, or send"))
    if problems:
        raise InvalidArgument("bad update", problems)
    return UpdateTurn(
        customer=(request.phone_number_id, request.phone_number),
        source_id=source_id("update", request.request_id),
        dedupe=bool(request.request_id),
        context=request.context,
        step=request.step,
        flow=request.flow,
        expected_revision=request.expected_revision,
        send=request.send,
        message_template=request.message_template,
    )


def send_turn(request: SendRequest) -> SendTurn:
    problems = common_problems(
        request.phone_number_id, request.phone_number, request.request_id, request.message_template
    )
    message = free_form(request.text, request.interactive, problems)
    if message is None and request.message_template is None and not problems:
        problems.append(("content", "one of text, interactive or template is required"))
    if len(request.agent) > MAX_AGENT:
        problems.append(("agent", f"at most {MAX_AGENT} characters"))
    if problems:
        raise InvalidArgument("bad message", problems)
    return SendTurn(
        customer=(request.phone_number_id, request.phone_number),
        source_id=source_id("send", request.request_id),
        dedupe=bool(request.request_id),
        free_form=message,
        message_template=request.message_template,
        agent=request.agent,
    )


def steerable(turn: UpdateTurn, opened: turns.Opened, now: datetime) -> State:
    """The conversation an update steers: NOT_FOUND without one, ABORTED at another revision."""
    state = opened.state
    if state is None or state.expires_at <= now:
        raise NotFound("the customer has no active conversation")
    if turn.expected_revision and turn.expected_revision != opened.revision:
        raise Aborted(
            f"the conversation is at revision {opened.revision}, not "
            f"{turn.expected_revision}: it changed since it was read; read it again and decide"
        )
    return state


def check_target(catalog: Catalog, turn: UpdateTurn | ResumeTurn, state: State) -> None:
    """FAILED_PRECONDITION (or NOT_FOUND for a flow) unless the update can arrive where it asks."""
    if turn.flow:
        template = catalog.current(turn.flow)
        if template is None:
            raise NotFound(f"template {turn.flow!r} does not exist")
        if not template.is_active:
            raise FailedPrecondition(f"template {turn.flow!r} is not active")
    else:
        template = catalog.get(state.flow, state.version)
        if template is None:
            raise FailedPrecondition(
                f"the conversation's template {state.flow!r} (version {state.version}) was deleted"
            )
    check_step(template, turn.step)


def check_step(template: Template, step: str) -> None:
    """FAILED_PRECONDITION naming the template's steps unless `step` is one of them."""
    if step and not template.has_step(step):
        raise FailedPrecondition(
            f"template {template.name!r} (version {template.version}) has no step {step!r}; "
            f"its steps: {', '.join([INITIAL, *sorted(set(template.steps) - {INITIAL})])}"
        )


def send_decision(turn: SendTurn, opened: turns.Opened) -> Decision:
    """A message beside the conversation: the free-form one if any, else the template."""
    to = turn.customer[1]
    state = opened.state
    if turn.free_form is not None:
        body = turn.free_form.body(to, state.context if state is not None else {})
    else:
        assert turn.message_template is not None  # send_turn requires one of them
        body = template_message(to, turn.message_template)
    return Decision(Outcome.ADVANCED, state, (body,))


def business_initiated(
    turn: Turn, decision: Decision, opened: turns.Opened, now: datetime
) -> Decision:
    """What a turn another service asked for sends: nothing for an update that sends nothing;
    outside the customer service window, the request's message template instead of free-form
    messages, or FAILED_PRECONDITION without one. A customer's message opened the window."""
    if isinstance(turn, MessageTurn):
        return decision
    if isinstance(turn, CallResultTurn):
        # The customer wrote just before the call (it answers them); should the window have
        # closed meanwhile, the flow still moves on, silently rather than refused.
        return (
            decision
            if window.is_open(opened.last_inbound_at, now)
            else (replace(decision, messages=()))
        )
    if isinstance(turn, UpdateTurn) and not turn.send:
        return replace(decision, messages=())
    if isinstance(turn, StartTurn) and turn.ttl is not None and decision.state is not None:
        decision = replace(decision, state=replace(decision.state, expires_at=now + turn.ttl))
    if not decision.messages or window.is_open(opened.last_inbound_at, now):
        return decision
    sent_as_template = isinstance(turn, SendTurn) and turn.free_form is None
    if sent_as_template:
        return decision
    if turn.message_template is None:
        raise window.closed(opened.last_inbound_at, handed_off=opened.handoff is not None)
    return replace(decision, messages=(template_message(turn.customer[1], turn.message_template),))
