"""A circuit breaker per business number: while Meta keeps failing, one probe at a time.

After `threshold` transient failures in a row (5xx, 131000, rate limits, no answer) a number's
breaker opens: its lanes wait instead of sending. After a cool-down one send goes as a probe
(half-open); if Meta answers it, the breaker closes and every waiting lane sends at once, each in
its customer's order; if it fails too, the breaker opens again with a cool-down twice as long,
up to a cap. Any answer from Meta that is not a transient failure (a 200, a permanent error, a
pair rate limit) shows that Meta is up. The breaker is per gateway process.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum


class State(IntEnum):
    """A breaker's state; the value is the metric's."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


@dataclass(frozen=True, eq=False)
class Permit:
    """Leave to send one message: a probe's, or one given while the breaker was closed."""

    number: str
    probe: bool
    opening: int  # how many times the breaker had opened when it was given


class Breaker:
    """One business number's breaker."""

    def __init__(
        self,
        *,
        threshold: int,
        cooldown: float,
        cooldown_max: float,
        on_change: Callable[[State, State], None] = lambda was, state: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._threshold = threshold
        self._base = cooldown
        self._cap = cooldown_max
        self._cooldown = cooldown
        self._on_change = on_change
        self._clock = clock
        self.state = State.CLOSED
        self.openings = 0
        self._failures = 0  # transient failures in a row
        self._probe_at = 0.0  # monotonic time after which a probe may go
        self._probe: Permit | None = None  # the probe in flight
        self._changed = asyncio.Event()

    async def admit(self, number: str, until: float) -> Permit | None:
        """Wait for leave to send: at once while closed, else a probe's turn or the close; None
        once the monotonic time `until` passes first."""
        while True:
            now = self._clock()
            if self.state is State.CLOSED:
                return Permit(number, probe=False, opening=self.openings)
            if self._probe is None and now >= self._probe_at:
                self._probe = Permit(number, probe=True, opening=self.openings)
                self._set(State.HALF_OPEN)
                return self._probe
            if now >= until:
                return None
            wake = until if self._probe is not None else min(until, self._probe_at)
            changed = self._changed
            try:
                await asyncio.wait_for(changed.wait(), timeout=max(0.001, wake - now))
            except TimeoutError:
                pass

    def valid(self, permit: Permit) -> bool:
        """Whether `permit` still allows a send: a probe's always, another only while the
        breaker stayed closed since it was given."""
        if permit.probe:
            return permit is self._probe
        return self.state is State.CLOSED and permit.opening == self.openings

    def answered(self, permit: Permit) -> None:
        """Meta answered a send (with anything but a transient failure): it is up."""
        self._failures = 0
        self._cooldown = self._base
        if permit is self._probe:
            self._probe = None
        if self.state is not State.CLOSED:
            self._set(State.CLOSED)

    def failed(self, permit: Permit) -> None:
        """A send failed transiently."""
        now = self._clock()
        if permit is self._probe:
            self._probe = None
            self._cooldown = min(self._cap, self._cooldown * 2)
            self._probe_at = now + self._cooldown
            self._set(State.OPEN)
        elif self.state is State.CLOSED:
            self._failures += 1
            if self._failures >= self._threshold:
                self.openings += 1
                self._cooldown = self._base
                self._probe_at = now + self._cooldown
                self._set(State.OPEN)
        # A send begun before the breaker opened and failing after: the probe decides.

    def abandon(self, permit: Permit) -> None:
        """A probe's permit that was not used (its lease ran short, the gateway is closing)."""
        if permit is self._probe:
            self._probe = None
            self._set(State.OPEN)

    def _set(self, state: State) -> None:
        was, self.state = self.state, state
        # Wake every waiter to look again (a freed probe turn, a close, a new cool-down).
        self._changed.set()
        self._changed = asyncio.Event()
        if state is not was:
            self._on_change(was, state)


class Breakers:
    """The breakers of one gateway process, one per business number, made on first use."""

    def __init__(
        self,
        *,
        threshold: int,
        cooldown: float,
        cooldown_max: float,
        on_change: Callable[[str, State | None, State], None] = lambda number, was, state: None,
    ) -> None:
        """`on_change(number, was, state)` hears of each number's breaker when it is made (was:
        None, state: CLOSED), then of each change."""
        self._threshold = threshold
        self._cooldown = cooldown
        self._cooldown_max = cooldown_max
        self._on_change = on_change
        self._breakers: dict[str, Breaker] = {}

    def __getitem__(self, number: str) -> Breaker:
        breaker = self._breakers.get(number)
        if breaker is None:
            breaker = self._breakers[number] = Breaker(
                threshold=self._threshold,
                cooldown=self._cooldown,
                cooldown_max=self._cooldown_max,
                on_change=lambda was, state: self._on_change(number, was, state),
            )
            self._on_change(number, None, State.CLOSED)
        return breaker

    def closed(self, number: str) -> bool:
        breaker = self._breakers.get(number)
        return breaker is None or breaker.state is State.CLOSED

    def states(self) -> dict[str, State]:
        """Every known number's state."""
        return {number: b.state for number, b in sorted(self._breakers.items())}
