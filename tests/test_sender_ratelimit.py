"""The per-business-number rate limit: steady pace, small bursts, numbers independent, pauses."""

from __future__ import annotations

import asyncio
import time

import pytest

from gateway.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_then_one_slot_per_interval() -> None:
    clock = Clock()
    limiter = RateLimiter(80, clock=clock)
    waits = [limiter.reserve("A") for _ in range(16)]
    assert waits[:8] == pytest.approx([0.0] * 8)  # a tenth of a second's worth
    assert waits[8] == pytest.approx(1 / 80)
    assert waits[15] == pytest.approx(8 / 80)


def test_numbers_do_not_share_a_budget() -> None:
    limiter = RateLimiter(10, burst=1, clock=Clock())
    assert limiter.reserve("A") == 0.0
    assert limiter.reserve("B") == 0.0
    assert limiter.reserve("A") == pytest.approx(0.1)


def test_the_budget_refills_with_time() -> None:
    clock = Clock()
    limiter = RateLimiter(10, burst=1, clock=clock)
    limiter.reserve("A")
    clock.now += 1.0
    assert limiter.reserve("A") == 0.0


def test_a_pause_holds_the_number_back() -> None:
    clock = Clock()
    limiter = RateLimiter(10, burst=1, clock=clock)
    limiter.pause("A", 2.0)
    assert limiter.reserve("A") == pytest.approx(2.0)
    assert limiter.reserve("B") == 0.0


def test_acquire_keeps_the_pace_in_real_time() -> None:
    async def run() -> float:
        limiter = RateLimiter(50, burst=1)
        started = time.monotonic()
        await asyncio.gather(*(limiter.acquire("A") for _ in range(11)))
        return time.monotonic() - started

    assert 0.19 <= asyncio.run(run()) < 0.5
