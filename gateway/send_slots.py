"""Meta's per-number send rate for the whole deployment: send slots granted by FlowService.

Meta limits each business number, not each gateway process. FlowService keeps one token bucket
per number in the database (GrantSendSlots), so every worker of every gateway draws from the same
budget: adding replicas never sends faster than SEND_RATE_PER_SECOND from a number.

Each process asks for the slots its sends waiting now need, plus AHEAD seconds of its recent pace
(so that a busy gateway has slots on hand while its next call is in flight), one call in flight
per number: under load one call covers many sends, and an idle gateway asks for one at a time.
A slot is used at its time or, if the sender comes late, up to MAX_LATE seconds after it; older
slots are dropped unused, so a late sender never bunches its sends with the next slots' owners.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc

from gateway.channel import Calls
from gateway.ratelimit import RateLimiter
from menuflow.logs import log
from menuflow.v1 import flow_pb2

logger = logging.getLogger("gateway.send_slots")

MAX_LATE = 0.05  # seconds a granted slot stays usable after its time
AHEAD = 0.2  # seconds of a process's recent pace it asks for beyond what waits now
PACE_WINDOW = 0.5  # seconds of sends the pace is measured over
RETRY_SECONDS = 0.5  # after a failed GrantSendSlots


@dataclass
class _Number:
    slots: deque[float] = field(default_factory=deque)  # monotonic start times, in order
    used: deque[float] = field(default_factory=deque)  # when slots were taken, last PACE_WINDOW
    waiting: int = 0  # callers without a slot
    fetching: asyncio.Task[None] | None = None
    paused_until: float = 0.0


class SharedRateLimiter:
    """At most `rate` sends per second per business number across the deployment."""

    def __init__(
        self, calls: Calls, rate: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._calls = calls
        self._rate = rate
        self._most = max(1, int(rate / 10), int(rate * AHEAD))  # slots per call
        self._clock = clock
        self._numbers: dict[str, _Number] = {}
        self._local: RateLimiter | None = None  # only with a FlowService that cannot grant slots

    async def acquire(self, key: str) -> None:
        """Wait for a send slot of business number `key`."""
        if self._local is not None:
            return await self._local.acquire(key)
        number = self._numbers.setdefault(key, _Number())
        number.waiting += 1
        waiting = True
        try:
            while True:
                now = self._clock()
                while number.slots and number.slots[0] < max(now - MAX_LATE, number.paused_until):
                    number.slots.popleft()
                if number.slots:
                    at = number.slots.popleft()
                    number.waiting -= 1
                    waiting = False
                    self._took(key, number, now)
                    if at > now:
                        await asyncio.sleep(at - now)
                    return
                if number.paused_until > now:
                    await asyncio.sleep(number.paused_until - now)
                    continue
                if self._local is not None:
                    number.waiting -= 1
                    waiting = False
                    return await self._local.acquire(key)
                self._refill(key, number)
                assert number.fetching is not None
                await asyncio.shield(number.fetching)
        finally:
            if waiting:
                number.waiting -= 1

    def _took(self, key: str, number: _Number, now: float) -> None:
        """Count a slot taken at `now`; ask for more before they run out at this pace."""
        number.used.append(now)
        while number.used and number.used[0] < now - PACE_WINDOW:
            number.used.popleft()
        if len(number.slots) < self._ahead(number) / 2:
            self._refill(key, number)

    def _ahead(self, number: _Number) -> float:
        return len(number.used) / PACE_WINDOW * AHEAD

    def _refill(self, key: str, number: _Number) -> None:
        if number.fetching is None:
            number.fetching = asyncio.create_task(self._fetch(key, number))

    def pause(self, key: str, seconds: float) -> None:
        """Meta said the number is over its throughput: this process sends nothing from it for
        `seconds` (its slots in that time are dropped)."""
        if self._local is not None:
            return self._local.pause(key, seconds)
        number = self._numbers.setdefault(key, _Number())
        number.paused_until = max(number.paused_until, self._clock() + seconds)

    async def close(self) -> None:
        tasks = [n.fetching for n in self._numbers.values() if n.fetching is not None]
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _fetch(self, key: str, number: _Number) -> None:
        try:
            request = flow_pb2.GrantSendSlotsRequest(
                phone_number_id=key,
                count=min(
                    max(1, round(number.waiting + self._ahead(number) - len(number.slots))),
                    self._most,
                ),
                rate_per_second=self._rate,
            )
            try:
                grant = await self._calls.flow.GrantSendSlots(
                    request, timeout=self._calls.timeout, metadata=self._calls.metadata
                )
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                    log(logger, logging.WARNING, "send_slots.unsupported", rate=self._rate)
                    self._local = RateLimiter(self._rate)  # an older FlowService: per process
                    return
                log(logger, logging.WARNING, "send_slots.error", code=exc.code().name)
                await asyncio.sleep(RETRY_SECONDS)
                return
            now = self._clock()
            first = now + grant.first_in_seconds
            number.slots.extend(first + k * grant.interval_seconds for k in range(grant.granted))
        finally:
            number.fetching = None
