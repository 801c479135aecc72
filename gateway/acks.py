"""AckOutbox calls, coalesced: acks that arrive while one call is in flight go together in the next.

Each ack still reaches FlowService before its caller goes on (a lane sends a customer's next
message only after the previous one's ack is recorded), so batching changes no ordering and no
guarantee; it turns N transactions and N round trips into one when the gateway is busy, and adds
no wait when it is idle (a lone ack goes out at once). A batch FlowService refuses as invalid is
retried one ack at a time, so one bad ack cannot take the others down with it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence

import grpc

from gateway.channel import Calls
from menuflow.logs import log
from menuflow.v1 import flow_pb2

logger = logging.getLogger("gateway.acks")

_PERMANENT = (
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.UNIMPLEMENTED,
    grpc.StatusCode.UNAUTHENTICATED,
)

Waiter = tuple[list[flow_pb2.OutboxAck], "asyncio.Future[set[int]]"]
# Called with the messages an AckOutbox call leased on to this gateway, and when the call began.
OnLeased = Callable[[Sequence[flow_pb2.OutboxMessage], float], object]


class Acker:
    """Sends acks to FlowService: one AckOutbox call in flight and the rest batched behind it;
    another call only when a full batch is waiting (up to `max_in_flight` calls).

    With `lease_next_seconds`, each call also takes the lanes of the customers it acks that have
    more waiting (AckOutbox's lease_next_seconds) and hands those messages to `on_leased`.
    """

    def __init__(
        self,
        calls: Calls,
        *,
        max_batch: int = 200,
        max_in_flight: int = 4,
        lease_next_seconds: int = 0,
        on_leased: OnLeased | None = None,
    ) -> None:
        self._calls = calls
        self._lease_next = lease_next_seconds if on_leased else 0
        self._on_leased = on_leased
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._waiting: deque[Waiter] = deque()
        self._queued = 0  # acks in self._waiting
        self._calls_in_flight: set[asyncio.Task[None]] = set()

    async def ack(self, acks: list[flow_pb2.OutboxAck]) -> set[int]:
        """Record `acks`; returns the ids among them whose lease this gateway no longer held.

        Shielded: a caller cancelled while waiting does not take its acks back.
        """
        future: asyncio.Future[set[int]] = asyncio.get_running_loop().create_future()
        self._waiting.append((acks, future))
        self._queued += len(acks)
        self._start_calls()
        return await asyncio.shield(future)

    def stop_leasing(self) -> None:
        """Take no more lanes on with the acks from now on (the gateway is closing)."""
        self._lease_next = 0

    async def close(self) -> None:
        """Wait until every ack handed in so far was sent (or given up on)."""
        while self._calls_in_flight:
            await asyncio.shield(asyncio.gather(*self._calls_in_flight, return_exceptions=True))

    def _start_calls(self) -> None:
        while self._waiting and (
            not self._calls_in_flight
            or (
                self._queued >= self._max_batch and len(self._calls_in_flight) < self._max_in_flight
            )
        ):
            batch = [self._waiting.popleft()]
            count = len(batch[0][0])
            while self._waiting and count + len(self._waiting[0][0]) <= self._max_batch:
                batch.append(self._waiting.popleft())
                count += len(batch[-1][0])
            self._queued -= count
            task = asyncio.create_task(self._call(batch), name="outbox-acks")
            self._calls_in_flight.add(task)
            task.add_done_callback(self._call_done)

    def _call_done(self, task: asyncio.Task[None]) -> None:
        self._calls_in_flight.discard(task)
        self._start_calls()

    async def _call(self, batch: list[Waiter]) -> None:
        try:
            acks = [ack for waiter_acks, _ in batch for ack in waiter_acks]
            lost = await self._send(acks, split=len(batch) > 1)
            for waiter_acks, future in batch:
                if not future.done():
                    future.set_result({a.id for a in waiter_acks} & lost)
        finally:
            for _, future in batch:  # only when the loop is going away mid-call
                future.cancel()

    async def _send(self, acks: list[flow_pb2.OutboxAck], *, split: bool) -> set[int]:
        """AckOutbox, retried for a while: a lost "sent" ack would let another sender resend it."""
        for attempt in range(8):
            request = flow_pb2.AckOutboxRequest(
                owner=self._calls.owner, acks=acks, lease_next_seconds=self._lease_next
            )
            try:
                requested_at = time.monotonic()
                response = await self._calls.flow.AckOutbox(
                    request, timeout=self._calls.timeout, metadata=self._calls.metadata
                )
                if response.messages and self._on_leased is not None:
                    self._on_leased(response.messages, requested_at)
                return set(response.lease_lost_ids)
            except grpc.aio.AioRpcError as exc:
                retry = exc.code() not in _PERMANENT
                if not retry and split:
                    lost: set[int] = set()
                    for one in acks:
                        lost |= await self._send([one], split=False)
                    return lost
                log(
                    logger,
                    logging.WARNING if retry else logging.ERROR,
                    "ack.error",
                    ids=",".join(str(a.id) for a in acks),
                    code=exc.code().name,
                    attempt=attempt + 1,
                )
                if not retry:
                    break
                await asyncio.sleep(min(5.0, 0.2 * 2**attempt))
        log(logger, logging.ERROR, "ack.lost", ids=",".join(str(a.id) for a in acks))
        return set()
