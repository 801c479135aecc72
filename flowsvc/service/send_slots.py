"""Meta's per-number send rate for the whole deployment: FlowService grants send slots from each
business number's shared bucket (store/send_rates.py), so adding gateways never adds throughput
past what Meta allows a number."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from flowsvc.clock import Clock, utcnow
from flowsvc.errors import InvalidArgument
from flowsvc.store import send_rates

MAX_RATE = 10_000.0  # sends per second; Meta's highest tier is 1,000
MAX_SLOTS = 1_000  # slots per grant


@dataclass(frozen=True, slots=True)
class Grant:
    """`count` slots, one every `interval` seconds, the first `first_in` seconds from now (it may
    be negative: a burst may use slots that are already due)."""

    count: int
    first_in: float
    interval: float


class SendSlots:
    """GrantSendSlots."""

    def __init__(self, sessions: sessionmaker[Session], *, clock: Clock = utcnow) -> None:
        self._sessions = sessions
        self._clock = clock

    def grant(self, phone_number_id: str, count: int, rate: float, burst: int) -> Grant:
        """Reserve `count` sends (at most a second's worth) from `phone_number_id` at `rate` per
        second, of which up to `burst` may go at once (0: a tenth of a second's worth)."""
        problems = []
        if not phone_number_id or len(phone_number_id) > 64:
            problems.append(("phone_number_id", "required, at most 64 characters"))
        if not 0 < rate <= MAX_RATE:
            problems.append(("rate_per_second", f"must be above 0 and at most {MAX_RATE:g}"))
        if count < 0 or burst < 0:
            problems.append(("count", "count and burst must not be negative"))
        if problems:
            raise InvalidArgument("bad send slot request", problems)
        burst = burst or max(1, int(rate / 10))
        granted = min(max(count, 1), max(1, int(rate)), MAX_SLOTS)
        interval = 1.0 / rate
        now = self._clock().timestamp()
        with self._sessions.begin() as session:
            starts = send_rates.grant(
                session.connection(), phone_number_id, now, granted * interval
            )
        tolerance = (burst - 1) * interval
        return Grant(granted, max(starts, now) - tolerance - now, interval)
