"""One log line per handled message: what happened, to whom (masked), how long; never its text.

On the hot path: one logging call per message, and no field is built when the level is off.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from flowsvc.errors import FlowError
from flowsvc.service.conversations import Handled, Message
from flowsvc.store.db import UNREACHABLE
from menuflow.logs import mask_phone

log = logging.getLogger("flowsvc.messages")


def handle(
    run: Callable[[Message, str, int], Handled],
    message: Message,
    lease_owner: str,
    lease_seconds: int,
) -> Handled:
    """`run(message, ...)` (Conversations.handle), logged as "message handled"."""
    return _logged("message", lambda: run(message, lease_owner, lease_seconds), _fields(message))


def handle_many(
    run: Callable[[Sequence[Message], str, int], list[Handled | Exception]],
    messages: Sequence[Message],
    lease_owner: str,
    lease_seconds: int,
) -> list[Handled | Exception]:
    """`run(messages, ...)` (Conversations.handle_many): a line per message, as `handle` logs
    it; elapsed_ms is the whole call's."""
    started = time.perf_counter()
    outcomes = run(messages, lease_owner, lease_seconds)
    for message, outcome in zip(messages, outcomes, strict=True):
        _report("message", outcome, started, _fields(message))
    return outcomes


def _fields(message: Message) -> Callable[[], dict[str, Any]]:
    return lambda: {
        "message_id": message.message_id,
        "customer": mask_phone(message.phone_number),
        "kind": "text"
        if message.text is not None
        else "selection"
        if message.selection_id is not None
        else "unsupported"
        if message.unsupported_type is not None
        else "none",
    }


def start(
    run: Callable[..., Handled],
    phone_number_id: str,
    phone_number: str,
    template_name: str,
    context: Mapping[str, Any],
    request_id: str,
    lease_owner: str,
    lease_seconds: int,
) -> Handled:
    """`run(...)` (Conversations.start), logged as "conversation started"."""
    return _logged(
        "conversation",
        lambda: run(
            phone_number_id,
            phone_number,
            template_name,
            context,
            request_id,
            lease_owner,
            lease_seconds,
        ),
        lambda: {
            "message_id": f"start:{request_id}" if request_id else "",
            "customer": mask_phone(phone_number),
            "template": template_name,
        },
    )


_EVENTS = {
    "message": ("message handled", "message refused", "message failed"),
    "conversation": ("conversation started", "start refused", "start failed"),
}


def _logged(
    subject: str, run: Callable[[], Handled], fields: Callable[[], dict[str, Any]]
) -> Handled:
    started = time.perf_counter()
    try:
        handled = run()
    except Exception as error:
        _report(subject, error, started, fields)
        raise
    _report(subject, handled, started, fields)
    return handled


def _report(
    subject: str,
    outcome: Handled | Exception,
    started: float,
    fields: Callable[[], dict[str, Any]],
) -> None:
    done, refused, failed = _EVENTS[subject]
    if isinstance(outcome, FlowError):
        _failure(logging.WARNING, refused, "refused", outcome, started, fields, reason=str(outcome))
    elif isinstance(outcome, UNREACHABLE):  # the servicer answers UNAVAILABLE; no traceback
        _failure(logging.WARNING, failed, "unavailable", outcome, started, fields)
    elif isinstance(outcome, Exception):
        _failure(logging.ERROR, failed, "error", outcome, started, fields, exc_info=True)
    elif log.isEnabledFor(logging.INFO):
        conversation = outcome.conversation
        log.info(
            done,
            extra={
                **fields(),
                "outcome": outcome.outcome,
                "duplicate": outcome.duplicate,
                "flow": conversation.flow if conversation else None,
                "step": conversation.current_step if conversation else None,
                "replies": len(outcome.messages),
                "elapsed_ms": _elapsed_ms(started),
            },
        )


def _failure(
    level: int,
    event: str,
    outcome: str,
    error: Exception,
    started: float,
    fields: Callable[[], dict[str, Any]],
    *,
    exc_info: bool = False,
    **more: Any,
) -> None:
    if log.isEnabledFor(level):
        log.log(
            level,
            event,
            # The error's own traceback: also outside the except block it was caught in.
            exc_info=(type(error), error, error.__traceback__) if exc_info else None,
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
