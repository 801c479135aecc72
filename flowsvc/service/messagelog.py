"""One log line per handled message or started conversation: what happened, to whom (masked),
how long; never the message's text.

A turn done is a DEBUG line (as the gateway logs each message and send), a refusal a WARNING, a
failure a WARNING or an ERROR. On the hot path: one level check per message, and no field is built
when the level is off.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from flowsvc.errors import FlowError
from flowsvc.store.db import UNREACHABLE
from menuflow.logs import mask_message_id, mask_phone

if TYPE_CHECKING:  # the service modules that log here import this module
    from flowsvc.service.handling import StartRequest
    from flowsvc.service.inbound import InboundMessage
    from flowsvc.service.turns import Handled

log = logging.getLogger("flowsvc.messages")


def message_handled(message: InboundMessage, handled: Handled, started: float) -> None:
    if log.isEnabledFor(logging.DEBUG):
        log.debug("message handled", extra=_message(message) | _handled(handled, started))


def message_failed(message: InboundMessage, error: Exception, started: float) -> None:
    _failure("message refused", "message failed", error, started, lambda: _message(message))


def conversation_started(request: StartRequest, handled: Handled, started: float) -> None:
    if log.isEnabledFor(logging.DEBUG):
        log.debug("conversation started", extra=_start(request) | _handled(handled, started))


def start_failed(request: StartRequest, error: Exception, started: float) -> None:
    _failure("start refused", "start failed", error, started, lambda: _start(request))


STEERED = {
    "update": "conversation updated",
    "send": "message sent",
    "handoff": "handed off",
    "resume": "resumed",
    "timer": "timer fired",
    "call": "call result handled",
}


def steered(
    kind: str, phone_number: str, request_id: str, handled: Handled, started: float
) -> None:
    """An UpdateConversation, SendMessage, HandOff, Resume or FinishCall (STEERED's keys) done."""
    if log.isEnabledFor(logging.DEBUG):
        log.debug(
            STEERED[kind], extra=_steer(phone_number, request_id) | _handled(handled, started)
        )


def steer_failed(
    kind: str, phone_number: str, request_id: str, error: Exception, started: float
) -> None:
    fields = partial(_steer, phone_number, request_id)
    _failure(f"{kind} refused", f"{kind} failed", error, started, fields)


def _steer(phone_number: str, request_id: str) -> dict[str, Any]:
    return {"request_id": request_id, "customer": mask_phone(phone_number)}


def _message(message: InboundMessage) -> dict[str, Any]:
    return {
        "message_id": mask_message_id(message.message_id),
        "customer": mask_phone(message.phone_number),
        "kind": "text"
        if message.text is not None
        else "selection"
        if message.selection_id is not None
        else "unsupported"
        if message.unsupported_type is not None
        else "none",
    }


def _start(request: StartRequest) -> dict[str, Any]:
    return {
        "message_id": f"start:{request.request_id}" if request.request_id else "",
        "customer": mask_phone(request.phone_number),
        "template": request.template_name,
    }


def _handled(handled: Handled, started: float) -> dict[str, Any]:
    conversation = handled.conversation
    return {
        "outcome": handled.outcome,
        "duplicate": handled.duplicate,
        "flow": conversation.flow if conversation else None,
        "step": conversation.current_step if conversation else None,
        "replies": len(handled.messages),
        "elapsed_ms": _elapsed_ms(started),
    }


def _failure(
    refused: str,
    failed: str,
    error: Exception,
    started: float,
    fields: Callable[[], dict[str, Any]],
) -> None:
    """A refusal (the caller's mistake) or a failure (ours, or the database's), at its level."""
    if isinstance(error, FlowError):
        level, event, outcome, more = logging.WARNING, refused, "refused", {"reason": str(error)}
    elif isinstance(error, UNREACHABLE):  # answered UNAVAILABLE; no traceback
        level, event, outcome, more = logging.WARNING, failed, "unavailable", {}
    else:
        level, event, outcome, more = logging.ERROR, failed, "error", {}
    if not log.isEnabledFor(level):
        return
    log.log(
        level,
        event,
        # The error's own traceback: also outside the except block it was caught in.
        exc_info=(type(error), error, error.__traceback__) if outcome == "error" else None,
        extra={
            **fields(),
            "outcome": outcome,
            "duplicate": False,
            "error": type(error).__name__,
            "elapsed_ms": _elapsed_ms(started),
            **more,
        },
    )


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
