"""Inbound messages to FlowService: messages that wait together go in one HandleMessages call.

A message goes out at once while fewer than `max_in_flight` calls are running, so an idle gateway
adds no wait; when every call slot is busy, the messages arriving meanwhile queue, and the next
free slot takes them all (up to `max_batch`) in one call. FlowService then handles them in one
transaction, sharing the call's, the transaction's and the commit's cost, while each message keeps
its own result: one refused message fails alone. The busier the gateway, the bigger the batches:
the batching is the backlog, not a timer. A batch is bounded by count and by bytes (FlowService
refuses a request over its size limit whole), and a call refused as a whole (too large, or any
other refusal of the request rather than of a message) is split in two and each half sent again:
a refusal of the call is never taken for a verdict on its messages.

A caller still waits for its own message's result before it goes on (and before its webhook is
answered), so one customer's messages keep their order and a 200 still means recorded.
"""

from __future__ import annotations

import asyncio
from collections import deque

import grpc

from gateway.channel import Calls
from menuflow.v1 import flow_pb2

# google.rpc code numbers to grpc's enum.
_CODES = {code.value[0]: code for code in grpc.StatusCode}

Waiter = tuple[flow_pb2.InboundMessage, "asyncio.Future[flow_pb2.HandleMessageResponse]", int]
# A call refused as a whole with one of these (too large, say) is split in two and each half sent.
_SPLIT = (
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.OUT_OF_RANGE,
)


class HandleError(Exception):
    """FlowService did not handle a message: the status HandleMessage would have failed with."""

    def __init__(self, code: grpc.StatusCode, details: str, *, whole_call: bool = False) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details
        # The call failed as a whole: a status of the call, never a verdict on this message.
        self.whole_call = whole_call


class Batches:
    """Hands inbound messages to FlowService in HandleMessages calls."""

    def __init__(
        self,
        calls: Calls,
        *,
        lease_seconds: int,
        max_in_flight: int,
        max_batch: int,
        max_bytes: int,
    ) -> None:
        self._calls = calls
        self._lease_seconds = lease_seconds
        self._max_in_flight = max_in_flight
        self._max_batch = max_batch
        self._max_bytes = max_bytes
        self._waiting: deque[Waiter] = deque()
        self._in_flight: set[asyncio.Task[None]] = set()

    async def handle(self, message: flow_pb2.InboundMessage) -> flow_pb2.HandleMessageResponse:
        """What FlowService made of `message`; HandleError when it did not handle it."""
        future: asyncio.Future[flow_pb2.HandleMessageResponse] = (
            asyncio.get_running_loop().create_future()
        )
        self._waiting.append((message, future, message.ByteSize()))
        self._start_calls()
        return await future

    def _start_calls(self) -> None:
        while self._waiting and len(self._in_flight) < self._max_in_flight:
            batch = [self._waiting.popleft()]  # one message always goes, whatever its size
            size = batch[0][2]
            while (
                self._waiting
                and len(batch) < self._max_batch
                and size + self._waiting[0][2] <= self._max_bytes
            ):
                size += self._waiting[0][2]
                batch.append(self._waiting.popleft())
            task = asyncio.create_task(self._call(batch), name="handle-messages")
            self._in_flight.add(task)
            task.add_done_callback(self._call_done)

    def _call_done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._start_calls()

    async def _call(self, batch: list[Waiter]) -> None:
        try:
            outcomes = await self._send([message for message, _, _ in batch])
        except asyncio.CancelledError:  # only when the loop is going away mid-call
            for _, future, _ in batch:
                future.cancel()
            raise
        except Exception as error:  # not a status: a bug; the webhooks fail (500), never hang
            for _, future, _ in batch:
                if not future.done():
                    future.set_exception(error)
            return
        for (_, future, _), outcome in zip(batch, outcomes, strict=True):
            if future.done():  # its webhook went away meanwhile; FlowService handled it anyway
                continue
            if isinstance(outcome, HandleError):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)

    async def _send(
        self, messages: list[flow_pb2.InboundMessage]
    ) -> list[flow_pb2.HandleMessageResponse | HandleError]:
        request = flow_pb2.HandleMessagesRequest(
            messages=messages, lease_owner=self._calls.owner, lease_seconds=self._lease_seconds
        )
        try:
            response = await self._calls.flow.HandleMessages(
                request, timeout=self._calls.timeout, metadata=self._calls.metadata
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() in _SPLIT and len(messages) > 1:
                half = len(messages) // 2  # at most one message per customer: order holds
                return await self._send(messages[:half]) + await self._send(messages[half:])
            details = exc.details() or ""
            return [HandleError(exc.code(), details, whole_call=True) for _ in messages]
        if len(response.results) != len(messages):
            details = "FlowService answered a different number of results"
            return [HandleError(grpc.StatusCode.INTERNAL, details) for _ in messages]
        return [
            result.handled
            if result.WhichOneof("result") == "handled"
            else HandleError(
                _CODES.get(result.error.code, grpc.StatusCode.UNKNOWN), result.error.message
            )
            for result in response.results
        ]
