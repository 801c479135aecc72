"""Per-customer send lanes: each customer's leased messages go out strictly in order.

A lane sends its next message only after Meta accepted the previous one (or refused it for good).
When a message must be retried later, the lane acks the retry and releases the customer's remaining
messages: FlowService keeps the customer's later messages waiting behind the retried one, so order
holds across gateways. A message is never started when its lease could run out before Meta
answers; it is released instead. While the business number's circuit breaker is open the lane
waits (gateway/breaker.py), and gives its messages back if its lease runs short meanwhile. A
message past its send deadline (gateway/deadline.py) fails instead of being sent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import replace

from gateway import deadline
from gateway.acks import Acker
from gateway.breaker import Breaker, Breakers, Permit
from gateway.channel import Calls
from gateway.customer import Customer
from gateway.leases import Leased, leased_message
from gateway.metrics import Metrics
from gateway.pair_rate import PairRateBackoff
from gateway.ratelimit import Limiter
from gateway.sender import GraphSender
from gateway.tracker import tracked
from gateway.verdict import Verdict
from menuflow.logs import log, mask_message_id, mask_phone
from menuflow.v1 import flow_pb2

logger = logging.getLogger("gateway.lanes")

SETTLED_MEMORY = 10_000


class Lanes:
    """The send lanes of one gateway process."""

    def __init__(
        self,
        *,
        calls: Calls,
        sender: GraphSender,
        limiter: Limiter,
        slots: asyncio.Semaphore,
        metrics: Metrics,
        breakers: Breakers,
        send_deadline: float,
        lease_seconds: int,
        send_budget: float,
    ) -> None:
        self._calls = calls
        self._sender = sender
        self._limiter = limiter
        self._metrics = metrics
        self._breakers = breakers
        self._send_deadline = send_deadline
        self._slots = slots  # Graph API requests in flight, read receipts included
        self._lease_seconds = lease_seconds
        self._send_budget = send_budget
        # An ack takes on the lanes of the customers it acks that have more waiting (a reply
        # another gateway worker wrote while we held the customer's earlier one).
        self._acker = Acker(calls, lease_next_seconds=lease_seconds, on_leased=self.take)
        self._queues: dict[Customer, deque[Leased]] = {}
        self._workers: dict[Customer, asyncio.Task[None]] = {}
        self._ids: set[int] = set()
        # Ids recently settled (sent or failed), so that a stale copy (a duplicate HandleMessage
        # answer read before our ack committed) is never sent again. Bounded: old ids fall out.
        self._settled: dict[int, None] = {}
        self._pair_rate = PairRateBackoff()
        self._busy: set[Customer] = set()  # lanes inside a send, its ack, or a release
        self._observed: set[str] = set()  # business numbers the waiting gauges were set for
        # When we last gave a customer's message back (a retry, a release), monotonic; see submit.
        self._put_back: dict[Customer, float] = {}
        self._closing = False

    @property
    def holding(self) -> int:
        """Leased messages not yet acked."""
        return len(self._ids)

    def submit(self, leased: list[Leased]) -> int:
        """Queue leased messages; returns how many were new.

        A customer's messages are sent in id order (their sending order), whatever order the
        calls that leased them answered in: an ack that takes a lane on (AckOutbox
        lease_next_seconds) can answer after a HandleMessage whose reply follows the messages
        that ack leased.
        """
        added = 0
        for item in leased:
            message = item.message
            if message.id in self._ids or message.id in self._settled:
                continue
            customer = (message.customer.phone_number_id, message.customer.phone_number)
            self._ids.add(message.id)
            _insert(self._queues.setdefault(customer, deque()), item, customer in self._workers)
            added += 1
            if customer not in self._workers and not self._closing:
                self._workers[customer] = asyncio.create_task(
                    self._run(customer), name=f"lane-{message.id}"
                )
        self._metrics.lane_messages.set(len(self._ids))
        return added

    async def close(self, grace: float) -> None:
        """Finish sends in flight (up to `grace` seconds), then release every message not begun."""
        self._closing = True
        self._acker.stop_leasing()  # the acks of the close take nothing on
        waiting = [task for customer, task in self._workers.items() if customer not in self._busy]
        for task in waiting:
            task.cancel()  # waiting for a slot or the rate limit: nothing was sent
        busy = list(self._workers.values())
        if busy:
            _, late = await asyncio.wait(busy, timeout=grace)
            for task in late:
                task.cancel()
        await asyncio.gather(*waiting, *busy, return_exceptions=True)
        rest = [item for queue in self._queues.values() for item in queue if not item.started]
        self._queues.clear()
        await self._release(rest)
        await self._acker.close()

    async def _run(self, customer: Customer) -> None:
        queue = self._queues[customer]
        breaker = self._breakers[customer[0]]
        try:
            while queue and not self._closing:
                item = queue[0]
                if self._put_back.get(customer, -1.0) >= item.requested_at:
                    # Leased by a call made before we gave an earlier message of the customer
                    # back: HandleMessage leases new replies to the caller holding the earlier
                    # ones, and on PostgreSQL it may have read that we held one whose retry we
                    # were recording meanwhile. Sending would overtake that one: give these back
                    # too, and the pump claims them all again, in order.
                    held = list(queue)
                    queue.clear()
                    await self._release(held)
                    log(logger, logging.INFO, "send.behind_put_back", messages=len(held))
                    continue
                limit = deadline.limit(item.message, self._send_deadline)
                if limit.left() <= 0:
                    await self._expire(item, limit)
                    self._forget(queue.popleft())
                    continue
                permit = await breaker.admit(customer[0], min(item.deadline, limit.monotonic()))
                if permit is None:
                    if limit.left() <= 0:
                        continue  # failed at the top of the loop
                    # The breaker held the lane until its lease ran short: give it back.
                    held = list(queue)
                    queue.clear()
                    await self._release(held)
                    log(logger, logging.INFO, "send.breaker_held", messages=len(held))
                    continue  # with what came in meanwhile, if anything
                try:
                    await self._attempt(customer, queue, breaker, permit, limit)
                finally:
                    breaker.abandon(permit)  # a probe that did not go frees its turn
        finally:
            del self._workers[customer]
            if not queue:
                self._queues.pop(customer, None)
            self._metrics.lane_messages.set(len(self._ids))

    async def _attempt(
        self,
        customer: Customer,
        queue: deque[Leased],
        breaker: Breaker,
        permit: Permit,
        limit: deadline.Limit,
    ) -> None:
        """Send the lane's first message with `permit` (unless the breaker took the leave back
        meanwhile); when it must wait for a retry, give the messages behind it back."""
        item = queue[0]
        # A slot is one Graph API request in flight: held for the request, not the ack.
        slot = _Slot(self._slots)
        await slot.acquire()
        try:
            await self._limiter.acquire(customer[0])
            if self._closing or not breaker.valid(permit):
                return  # the breaker opened while this lane waited: wait for it again
            self._busy.add(customer)  # from here on, close() lets it finish
            try:
                if await self._send(customer, item, breaker, permit, limit, slot.release):
                    self._forget(queue.popleft())
                    return
                held = list(queue)[1:]
                self._forget(queue.popleft())
                queue.clear()
                await self._release(held)
            finally:
                self._busy.discard(customer)
        finally:
            slot.release()

    def _forget(self, item: Leased) -> None:
        self._ids.discard(item.message.id)

    async def _send(
        self,
        customer: Customer,
        item: Leased,
        breaker: Breaker,
        permit: Permit,
        limit: deadline.Limit,
        sent: Callable[[], None],
    ) -> bool:
        """Send one message (calling `sent` once the request is over) and ack it; False when the
        customer's lane must stop here."""
        message = item.message
        number = message.customer.phone_number_id
        if time.monotonic() >= item.deadline:
            await self._release([item])
            log(logger, logging.WARNING, "send.lease_short", outbox_id=message.id)
            return False
        started = time.monotonic()
        item.started = True
        self._metrics.queue_seconds.observe(started - item.leased_at)
        verdict = await self._sender.send(
            number,
            tracked(message.body_json, message.id),
            message.attempts + 1,
            self._pair_rate.hits(customer),
        )
        sent()
        if verdict.transient:
            breaker.failed(permit)
        else:
            breaker.answered(permit)
        self._pair_rate.count(customer, verdict.error, retry=verdict.kind == "retry")
        self._metrics.send_seconds.observe(time.monotonic() - started)
        self._metrics.sends.labels(
            result="ambiguous" if verdict.ambiguous else verdict.kind, code=verdict.label
        ).inc()
        if verdict.throttled:
            self._limiter.pause(number, 1.0)
        if verdict.kind == "retry":
            verdict = self._within(verdict, limit)
        if verdict.kind != "retry":
            self._remember_settled(message.id)
        lost = await self._ack([verdict.ack(message.id)])
        if verdict.kind == "retry":
            self._gave_back([item])  # once recorded: a later HandleMessage sees it pending
        level = logging.DEBUG if verdict.kind == "sent" else logging.WARNING
        if logger.isEnabledFor(level):  # the masked fields cost more than the check, per send
            log(
                logger,
                level,
                f"send.{verdict.kind}",
                outbox_id=message.id,
                source=mask_message_id(message.source_id),
                to=mask_phone(message.customer.phone_number),
                wa_id=mask_message_id(verdict.wa_message_id) if verdict.wa_message_id else "",
                code=verdict.label,
                delay=verdict.delay_seconds,
                ambiguous=verdict.ambiguous,
                lease_lost=message.id in lost,
            )
        return verdict.kind != "retry" and message.id not in lost

    def _within(self, verdict: Verdict, limit: deadline.Limit) -> Verdict:
        """A retry, unless the message's deadline passed: then its failure, saying so. A retry
        never waits past the deadline (the claim then fails the message without sending it)."""
        left = limit.left()
        if left <= 0:
            last = f"{verdict.error.code} {verdict.error.title}" if verdict.error else verdict.label
            failed = Verdict("failed", error=limit.error(last))
            self._metrics.sends.labels(result="failed", code=failed.label).inc()
            return failed
        self._metrics.retries.labels(reason=verdict.label).inc()
        if verdict.delay_seconds > left:
            return replace(verdict, delay_seconds=int(left))
        return verdict

    async def _expire(self, item: Leased, limit: deadline.Limit) -> None:
        """Fail a message whose deadline passed before it could be sent (again)."""
        message = item.message
        last = message.error if message.HasField("error") else None
        verdict = Verdict("failed", error=limit.error(f"{last.code} {last.title}" if last else ""))
        self._remember_settled(message.id)
        await self._ack([verdict.ack(message.id)])
        self._metrics.sends.labels(result="failed", code=verdict.label).inc()
        log(
            logger,
            logging.WARNING,
            "send.expired",
            outbox_id=message.id,
            source=mask_message_id(message.source_id),
            to=mask_phone(message.customer.phone_number),
            reason=limit.reason,
            attempts=message.attempts,
        )

    def _gave_back(self, items: list[Leased]) -> None:
        """Remember that these customers' messages went back to FlowService, once it recorded
        it (see _run)."""
        now = time.monotonic()
        for item in items:
            customer = (item.message.customer.phone_number_id, item.message.customer.phone_number)
            self._put_back.pop(customer, None)
            self._put_back[customer] = now
        while len(self._put_back) > SETTLED_MEMORY:
            del self._put_back[next(iter(self._put_back))]

    def _remember_settled(self, outbox_id: int) -> None:
        self._settled[outbox_id] = None
        if len(self._settled) > SETTLED_MEMORY:
            del self._settled[next(iter(self._settled))]

    def observe(self) -> None:
        """Set the waiting gauges (messages held unsent, the oldest one's age) per number."""
        now = time.time()
        counts: dict[str, int] = {}
        oldest: dict[str, float] = {}
        for (number, _), queue in self._queues.items():
            for item in queue:
                age = now - deadline.queued_at(item.message)
                counts[number] = counts.get(number, 0) + 1
                oldest[number] = max(oldest.get(number, 0.0), age)
        for number in self._observed - counts.keys():
            self._metrics.waiting.labels(phone_number_id=number).set(0)
            self._metrics.oldest_waiting.labels(phone_number_id=number).set(0)
        for number, count in counts.items():
            self._metrics.waiting.labels(phone_number_id=number).set(count)
            self._metrics.oldest_waiting.labels(phone_number_id=number).set(oldest[number])
        self._observed |= counts.keys()

    def oldest_waiting(self) -> float:
        """Age in seconds of the oldest message held unsent (0 when none)."""
        now = time.time()
        ages = [now - deadline.queued_at(q[0].message) for q in self._queues.values() if q]
        return max(ages, default=0.0)

    async def _release(self, items: list[Leased]) -> None:
        if not items:
            return
        for item in items:
            self._forget(item)
        await self._ack([flow_pb2.OutboxAck(id=i.message.id, released=True) for i in items])
        self._gave_back(items)
        self._metrics.sends.labels(result="released", code="").inc(len(items))

    def take(self, messages: Sequence[flow_pb2.OutboxMessage], requested_at: float) -> int:
        """Queue messages a claim or an ack made at `requested_at` leased to us for our lease
        length (while closing, to be released with the rest); returns how many were new."""
        return self.submit(
            [
                leased_message(m, requested_at, self._lease_seconds, self._send_budget)
                for m in messages
            ]
        )

    async def _ack(self, acks: list[flow_pb2.OutboxAck]) -> set[int]:
        """Record acks in FlowService (batched with other lanes' acks); returns lost leases."""
        return await self._acker.ack(acks)


def _insert(queue: deque[Leased], item: Leased, running: bool) -> None:
    """Put `item` in id order among the messages of `queue` not begun; the first one of a lane
    whose worker runs is taken already (it is being sent, or acked)."""
    position = len(queue)
    first = 1 if running else 0
    while position > first and queue[position - 1].message.id > item.message.id:
        position -= 1
    queue.insert(position, item)


class _Slot:
    """One semaphore slot that can be given back early, and only once."""

    def __init__(self, semaphore: asyncio.Semaphore) -> None:
        self._semaphore = semaphore
        self._held = False

    async def acquire(self) -> None:
        await self._semaphore.acquire()
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._semaphore.release()
