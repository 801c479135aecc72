"""Read receipts (blue ticks), in the background, on the Graph API slots and rate the lanes use."""

from __future__ import annotations

import asyncio

from gateway.breaker import Breakers
from gateway.customer import Customer
from gateway.metrics import Metrics
from gateway.ratelimit import Limiter
from gateway.sender import GraphSender


class Receipts:
    """The read receipts of one gateway process: best effort, and giving way to replies."""

    def __init__(
        self,
        *,
        sender: GraphSender,
        slots: asyncio.Semaphore,
        limiter: Limiter,
        metrics: Metrics,
        breakers: Breakers,
    ) -> None:
        self._sender = sender
        self._breakers = breakers  # no receipts while the number's Graph API is failing
        self._slots = slots  # Graph API requests in flight, the lanes' sends included
        self._limiter = limiter
        self._metrics = metrics
        self._reads: set[asyncio.Task[None]] = set()
        # The newest message of each customer whose read receipt waits for a slot (see mark_read).
        self._unread: dict[Customer, str] = {}
        self._closing = False

    def mark_read(self, customer: Customer, message_id: str) -> None:
        """Mark a customer's inbound message read, in the background and outside the lanes.

        Call in the order the customer's messages are handled. Meta marks earlier messages of the
        conversation read with a later one, so while a customer's receipt waits for a send slot, a
        newer message takes its place: a burst of messages costs one request, and under load read
        receipts give way to replies instead of piling up.
        """
        if self._closing:
            return
        if customer in self._unread:
            self._unread[customer] = message_id
            self._metrics.reads.labels(result="covered").inc()
            return
        self._unread[customer] = message_id
        task = asyncio.create_task(self._read(customer))
        self._reads.add(task)
        task.add_done_callback(self._reads.discard)

    def stop(self) -> None:
        """Ask for no more receipts (the gateway is shutting down); those started go on."""
        self._closing = True

    async def close(self) -> None:
        """Stop, and cancel every receipt still waiting or in flight."""
        self._closing = True
        for task in list(self._reads):
            task.cancel()
        await asyncio.gather(*self._reads, return_exceptions=True)

    async def _read(self, customer: Customer) -> None:
        phone_number_id = customer[0]
        async with self._slots:
            await self._limiter.acquire(phone_number_id)
            # From here on, a newer message starts a receipt of its own. (Only close() cancels a
            # receipt still waiting; none is asked for after it, so what it leaves here is unused.)
            message_id = self._unread.pop(customer)
            if not self._breakers.closed(phone_number_id):
                self._metrics.reads.labels(result="skipped").inc()
                return
            ok = await self._sender.mark_read(phone_number_id, message_id)
        self._metrics.reads.labels(result="ok" if ok else "error").inc()
