"""How long an outbox message may wait to be sent: the send deadline, and Meta's 24-hour window.

A message is tried (and a transient failure retried) until it is `SEND_DEADLINE_SECONDS` old,
counted from when flowsvc queued it; then it fails as "deadline passed". A free-form message
(anything but a message template) never waits past 24 hours: Meta delivers free-form messages
only within 24 hours of the customer's last message, which came before the reply was queued, so
it fails as "customer service window closed" (a window that closed earlier, for a message queued
long after the customer wrote, is Meta's to say: 131047, a permanent failure).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from menuflow.v1 import flow_pb2

WINDOW_SECONDS = 24 * 3600.0
DEADLINE_PASSED = "deadline passed"
WINDOW_CLOSED = "customer service window closed"


@dataclass(frozen=True)
class Limit:
    """When a message stops being worth sending (wall clock), and what its failure then says."""

    expires_at: float  # epoch seconds
    reason: str
    seconds: float  # how long after being queued

    def left(self) -> float:
        """Seconds until it expires (negative once it has)."""
        return self.expires_at - time.time()

    def monotonic(self) -> float:
        """The expiry as a time.monotonic() value."""
        return time.monotonic() + self.left()

    def error(self, last: str) -> flow_pb2.MetaError:
        """The failure recorded for a message that expired, naming the last error it got."""
        if self.reason == WINDOW_CLOSED:
            why = (
                "not sent within 24 hours of being queued: WhatsApp delivers a free-form message "
                "only within 24 hours of the customer's last message (send a message template)"
            )
        else:
            why = f"not sent within {self.seconds:g} s of being queued (SEND_DEADLINE_SECONDS)"
        if last:
            why += f"; last error: {last}"
        return flow_pb2.MetaError(code=0, title=self.reason, details=why)


def queued_at(message: flow_pb2.OutboxMessage) -> float:
    """When flowsvc queued `message` (epoch seconds; now if it does not say)."""
    if not message.HasField("create_time"):
        return time.time()
    return message.create_time.seconds + message.create_time.nanos / 1e9


def limit(message: flow_pb2.OutboxMessage, deadline_seconds: float) -> Limit:
    """`message`'s limit under a send deadline of `deadline_seconds`."""
    queued = queued_at(message)
    if deadline_seconds <= WINDOW_SECONDS or _is_template(message.body_json):
        return Limit(queued + deadline_seconds, DEADLINE_PASSED, deadline_seconds)
    return Limit(queued + WINDOW_SECONDS, WINDOW_CLOSED, WINDOW_SECONDS)


def _is_template(body_json: str) -> bool:
    try:
        body = json.loads(body_json)
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("type") == "template"
