"""The circuit breaker on its own: opens after consecutive transient failures, one probe at a
time with a growing, capped cool-down, and everyone goes once a probe is answered."""

from __future__ import annotations

import asyncio
import time

import pytest

from gateway.breaker import Breaker, State

NUMBER = "106540352242922"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def soon(seconds: float = 5.0) -> float:
    return time.monotonic() + seconds


@pytest.mark.anyio
async def test_it_opens_after_consecutive_failures_only() -> None:
    breaker = Breaker(threshold=3, cooldown=0.05, cooldown_max=0.2)
    for _ in range(2):
        breaker.failed(await breaker.admit(NUMBER, soon()) or pytest.fail("closed"))
    breaker.answered(await breaker.admit(NUMBER, soon()) or pytest.fail("closed"))
    for _ in range(2):
        breaker.failed(await breaker.admit(NUMBER, soon()) or pytest.fail("closed"))
    assert breaker.state is State.CLOSED  # an answer in between started the count again
    breaker.failed(await breaker.admit(NUMBER, soon()) or pytest.fail("closed"))
    assert breaker.state is State.OPEN


@pytest.mark.anyio
async def test_one_probe_at_a_time_and_everyone_goes_when_it_is_answered() -> None:
    breaker = Breaker(threshold=1, cooldown=0.05, cooldown_max=0.2)
    breaker.failed(await breaker.admit(NUMBER, soon()) or pytest.fail("closed"))
    waiters = [asyncio.create_task(breaker.admit(NUMBER, soon())) for _ in range(10)]
    done, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    [probe] = [task.result() for task in done]
    assert probe is not None and probe.probe and breaker.state is State.HALF_OPEN
    await asyncio.sleep(0.3)  # well past the cool-down: still nobody else may go
    assert all(not task.done() for task in pending)
    breaker.answered(probe)
    permits = await asyncio.gather(*pending)
    assert breaker.state is State.CLOSED
    assert all(p is not None and not p.probe and breaker.valid(p) for p in permits)


@pytest.mark.anyio
async def test_a_failed_probe_doubles_the_cool_down_up_to_its_cap() -> None:
    breaker = Breaker(threshold=1, cooldown=0.04, cooldown_max=0.1)
    stale = await breaker.admit(NUMBER, soon()) or pytest.fail("closed")
    breaker.failed(stale)
    assert not breaker.valid(stale)  # given while closed: no good once the breaker opened
    waits = []
    for _ in range(4):
        began = time.monotonic()
        probe = await breaker.admit(NUMBER, soon()) or pytest.fail("no probe")
        waits.append(time.monotonic() - began)
        breaker.failed(probe)
    # 0.04 s, then 0.08, then 0.1 (capped) twice; sleeps may only run late.
    assert waits[0] >= 0.03 and waits[1] >= 0.07 and min(waits[2:]) >= 0.09
    assert await breaker.admit(NUMBER, time.monotonic() + 0.01) is None  # none before `until`


@pytest.mark.anyio
async def test_an_unused_probe_frees_its_turn() -> None:
    breaker = Breaker(threshold=1, cooldown=0.01, cooldown_max=0.01)
    breaker.failed(await breaker.admit(NUMBER, soon()) or pytest.fail("closed"))
    probe = await breaker.admit(NUMBER, soon()) or pytest.fail("no probe")
    breaker.abandon(probe)
    again = await breaker.admit(NUMBER, soon())
    assert again is not None and again.probe and again is not probe
