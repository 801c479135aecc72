"""Outbox messages this gateway holds a lease on, and the time after which sending one could
outlive its lease."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from menuflow.v1 import flow_pb2


@dataclass
class Leased:
    """An outbox message this gateway holds a lease on."""

    message: flow_pb2.OutboxMessage
    deadline: float  # monotonic time after which a send must not start
    requested_at: float = 0.0  # monotonic time the call that leased it was made
    leased_at: float = field(default_factory=time.monotonic)
    started: bool = False  # a send began: never release it, its outcome is unknown until acked


def leased_message(
    message: flow_pb2.OutboxMessage, requested_at: float, lease_seconds: int, budget: float
) -> Leased:
    """`message`, leased by a call made at `requested_at`, with its deadline: no send starts less
    than `budget` seconds before the lease ends.

    Counted from before the call that took the lease (so clock skew with FlowService cannot stretch
    it), and never past the lease end FlowService reports.
    """
    deadline = requested_at + lease_seconds - budget
    if message.HasField("lease_expire_time"):
        end = message.lease_expire_time.seconds + message.lease_expire_time.nanos / 1e9
        deadline = min(deadline, time.monotonic() + (end - time.time()) - budget)
    return Leased(message, deadline, requested_at)


def leased_replies(
    messages: Sequence[flow_pb2.OutboxMessage],
    duplicate: bool,
    owner: str,
    requested_at: float,
    lease_seconds: int,
    budget: float,
) -> list[Leased]:
    """The replies a HandleMessage or FinishCall response leased to this gateway (`owner`), to
    send now. A duplicate's replies are the first delivery's: whoever handled it holds (or held)
    them, so none are this call's."""
    return [
        leased_message(m, requested_at, lease_seconds, budget)
        for m in messages
        if m.lease_owner == owner and m.state == flow_pb2.DELIVERY_STATE_PENDING and not duplicate
    ]
