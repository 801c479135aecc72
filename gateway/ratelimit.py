"""A per-business-number send rate limit (GCRA: a token bucket without a refill task), FIFO-fair."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol


class Limiter(Protocol):
    """A per-business-number send rate: this process's (RateLimiter) or the deployment's."""

    async def acquire(self, key: str) -> None: ...

    def pause(self, key: str, seconds: float) -> None: ...


class RateLimiter:
    """At most `rate` acquisitions per second per key, small bursts; callers wait their turn."""

    def __init__(
        self,
        rate: float,
        *,
        burst: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._interval = 1.0 / rate
        # A tenth of a second's worth: smooth, so Meta's per-second count stays under `rate`.
        self._tolerance = (
            max(1, burst if burst is not None else int(rate / 10)) - 1
        ) * self._interval
        self._clock = clock
        self._next: dict[str, float] = {}  # theoretical arrival time of the next send, per key

    def reserve(self, key: str) -> float:
        """Take the next slot for `key` and return how many seconds to wait before using it."""
        now = self._clock()
        tat = max(self._next.get(key, now), now)
        self._next[key] = tat + self._interval
        return max(0.0, tat - self._tolerance - now)

    async def acquire(self, key: str) -> None:
        wait = self.reserve(key)
        if wait > 0:
            await asyncio.sleep(wait)

    def pause(self, key: str, seconds: float) -> None:
        """Meta said the number is over its throughput: nobody sends from it for `seconds`."""
        now = self._clock()
        self._next[key] = max(self._next.get(key, now), now + seconds + self._tolerance)
