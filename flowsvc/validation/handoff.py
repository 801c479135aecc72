"""Checks on a step's `handoff`: the customer goes to people (queue, priority, reason, and what
the bot says when it takes them back after idling)."""

from collections.abc import Collection, Mapping
from typing import Any

from flowsvc.engine import limits
from flowsvc.validation.context import check_text
from flowsvc.validation.violation import Violation, check_keys, kind

HANDOFF_KEYS = ("queue", "priority", "reason", "resume_message")
MAX_QUEUE = 64
MAX_REASON = 1024
MAX_PRIORITY = 9


def check_handoff(
    step: Mapping[Any, Any], path: str, out: list[Violation], names: Collection[str]
) -> None:
    """Report everything wrong with `step["handoff"]` and with what it is combined with."""
    handoff = step["handoff"]
    where = f"{path}.handoff"
    if not isinstance(handoff, Mapping):
        out.append(
            Violation(where, f"must be an object (queue, priority, ...), not {kind(handoff)}")
        )
        return
    check_keys(handoff, HANDOFF_KEYS, where, out)
    queue = handoff.get("queue", "")
    if not isinstance(queue, str) or len(queue) > MAX_QUEUE:
        out.append(Violation(f"{where}.queue", f"must be a text of at most {MAX_QUEUE} characters"))
    priority = handoff.get("priority", 0)
    if (
        not isinstance(priority, int)
        or isinstance(priority, bool)
        or not 0 <= priority <= MAX_PRIORITY
    ):
        out.append(Violation(f"{where}.priority", f"must be a whole number 0-{MAX_PRIORITY}"))
    reason = handoff.get("reason", "")
    if not isinstance(reason, str) or len(reason) > MAX_REASON:
        out.append(
            Violation(f"{where}.reason", f"must be a text of at most {MAX_REASON} characters")
        )
    if "resume_message" in handoff:
        check_text(
            handoff["resume_message"],
            f"{where}.resume_message",
            out,
            limit=limits.MAX_TEXT_BODY,
            names=names,
        )
    if step.get("end_conversation") is True:
        out.append(
            Violation(
                where,
                "cannot end the conversation: a handoff pauses it for people, who resume it; "
                "remove end_conversation or handoff",
            )
        )
