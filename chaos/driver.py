"""The driver plays Meta: it signs and posts webhooks for customers walking the flows, redelivers
any payload that did not get a 200 (with backoff, until the scenario's deadline), and injects
duplicates: copies sent at the same time to the other gateway, and late copies (out of order)."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from chaos.customers import Customer, inbound, message_id, payload
from chaos.processes import APP_SECRET
from gateway.signature import sign


@dataclass(frozen=True)
class Delivery:
    """How the scenario delivers payloads."""

    copies: tuple[int, ...] = (1,)  # each payload is delivered this many times (one drawn)
    concurrent: float = 0.0  # chance that an extra copy goes out with the first, to another gateway
    batch: int = 1  # at most this many messages per payload
    reversed_pairs: float = 0.0  # chance that two steps go in one payload, listed newest first


@dataclass
class Tally:
    messages: int = 0  # distinct inbound messages driven
    posts: int = 0  # HTTP POSTs made
    duplicates: int = 0  # extra copies of a payload injected
    redeliveries: int = 0  # posts repeated because the previous one got no 200
    refused: dict[str, int] = field(default_factory=dict)  # non-200 answers by status/error
    undelivered: int = 0  # payloads that never got a 200 before the deadline
    ok_times: list[float] = field(default_factory=list)  # wall time of every 200


class Driver:
    """Walks customers through their scripts against the gateways."""

    def __init__(
        self,
        gateways: list[str],
        delivery: Delivery,
        rng: random.Random,
        *,
        deadline: float,
    ) -> None:
        self._gateways = gateways
        self._delivery = delivery
        self._rng = rng
        self._deadline = deadline  # monotonic: no post starts after it
        self.tally = Tally()
        self.driven: set[str] = set()
        self._late: set[asyncio.Task[None]] = set()
        self._queue: asyncio.Queue[tuple[Customer, dict[str, Any], asyncio.Future[None]]]
        self._client: httpx.AsyncClient

    async def run(self, customers: list[Customer], ramp: float) -> None:
        self._queue = asyncio.Queue()
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=100)
        async with httpx.AsyncClient(timeout=15.0, limits=limits) as client:
            self._client = client
            batcher = asyncio.create_task(self._batcher())
            walks = [self._walk(c, self._rng.uniform(0, ramp)) for c in customers]
            await asyncio.gather(*walks)
            batcher.cancel()
            if self._late:
                await asyncio.gather(*self._late, return_exceptions=True)

    async def _walk(self, customer: Customer, delay: float) -> None:
        await asyncio.sleep(delay)
        if customer.burst:
            await self._burst(customer)
            return
        steps = list(customer.script)
        while steps and time.monotonic() < self._deadline:
            pair = len(steps) >= 2 and self._rng.random() < self._delivery.reversed_pairs
            taken, steps = (steps[:2], steps[2:]) if pair else (steps[:1], steps[1:])
            messages = [self._message(customer, step) for step in taken]
            if pair:
                # One payload, newest first: the gateway must order a customer's messages by time.
                await self._deliver([(customer, m) for m in reversed(messages)])
            else:
                await self._send(customer, messages[0])
            await asyncio.sleep(self._rng.uniform(0.05, 0.4))  # reading the reply

    async def _burst(self, customer: Customer) -> None:
        """20+ messages within a second, each its own webhook, all in flight at once."""
        sends = []
        for step in customer.script:
            message = self._message(customer, step, same_second=True)
            sends.append(asyncio.create_task(self._send(customer, message)))
            await asyncio.sleep(self._rng.uniform(0.0, 0.9 / len(customer.script)))
        await asyncio.gather(*sends)

    def _message(self, customer: Customer, step: Any, *, same_second: bool = False) -> Any:
        now = int(time.time())
        timestamp = now if same_second else max(now, customer.last_timestamp + 1)
        customer.last_timestamp = max(customer.last_timestamp, timestamp)
        mid = message_id(self._rng)
        customer.ids.append(mid)
        self.driven.add(mid)
        self.tally.messages += 1
        return inbound(customer, step, mid, timestamp)

    async def _send(self, customer: Customer, message: dict[str, Any]) -> None:
        """Through the batcher: returns once a payload holding the message got a 200."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self._queue.put((customer, message, done))
        await done

    async def _batcher(self) -> None:
        while True:
            items = [await self._queue.get()]
            if self._delivery.batch > 1:
                await asyncio.sleep(0.01)  # let a few more arrive, as Meta batches
                while len(items) < self._delivery.batch and not self._queue.empty():
                    items.append(self._queue.get_nowait())
                self._rng.shuffle(items)
            asyncio.create_task(self._batch(items))

    async def _batch(self, items: list[tuple[Customer, dict[str, Any], asyncio.Future[None]]]):
        await self._deliver([(c, m) for c, m, _ in items])
        for _, _, done in items:
            if not done.done():
                done.set_result(None)

    async def _deliver(self, items: list[tuple[Customer, dict[str, Any]]]) -> None:
        """Deliver one payload `copies` times: some at once to other gateways, the rest late."""
        body = payload(items)
        copies = self._rng.choice(self._delivery.copies)
        first = self._rng.randrange(len(self._gateways))
        now: list[int] = [first]
        later = 0
        for extra in range(1, copies):
            if self._rng.random() < self._delivery.concurrent:
                now.append((first + extra) % len(self._gateways))
            else:
                later += 1
        self.tally.duplicates += copies - 1
        await asyncio.gather(*(self._post_until_ok(body, g) for g in now))
        for _ in range(later):
            task = asyncio.create_task(self._late_copy(body))
            self._late.add(task)
            task.add_done_callback(self._late.discard)

    async def _late_copy(self, body: bytes) -> None:
        # A redelivery after newer messages of the same customer went through: out of order.
        await asyncio.sleep(self._rng.uniform(0.3, 4.0))
        await self._post_until_ok(body, self._rng.randrange(len(self._gateways)))

    async def _post_until_ok(self, body: bytes, gateway: int) -> None:
        headers = {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": sign(APP_SECRET, body),
        }
        attempt = 0
        while time.monotonic() < self._deadline:
            url = self._gateways[(gateway + attempt) % len(self._gateways)]
            self.tally.posts += 1
            if attempt:
                self.tally.redeliveries += 1
            try:
                response = await self._client.post(url, content=body, headers=headers)
                status = str(response.status_code)
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            if status == "200":
                self.tally.ok_times.append(time.time())
                return
            self.tally.refused[status] = self.tally.refused.get(status, 0) + 1
            attempt += 1
            # Meta retries at once, then less and less often.
            await asyncio.sleep(min(3.0, 0.1 * 2**attempt) * self._rng.uniform(0.5, 1.0))
        self.tally.undelivered += 1
