"""Coalesced AckOutbox calls: batched while one is in flight, each caller answered for its ids."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest

from gateway.acks import Acker
from gateway.channel import Calls
from menuflow.v1 import flow_pb2


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class _Refused(grpc.aio.AioRpcError):
    def __init__(self) -> None:
        super().__init__(
            grpc.StatusCode.INVALID_ARGUMENT,
            grpc.aio.Metadata(),
            grpc.aio.Metadata(),
            details="bad ack",
        )


class FlowService:
    """AckOutbox as FlowService answers it: records each call, reports `lost` ids as lost."""

    def __init__(self, lost: set[int], refuse: set[int] | None = None) -> None:
        self.calls: list[list[int]] = []
        self._lost = lost
        self._refuse = refuse or set()

    async def AckOutbox(
        self, request: flow_pb2.AckOutboxRequest, **_: Any
    ) -> flow_pb2.AckOutboxResponse:
        ids = [ack.id for ack in request.acks]
        self.calls.append(ids)
        await asyncio.sleep(0.01)
        if self._refuse & set(ids):
            raise _Refused()
        return flow_pb2.AckOutboxResponse(lease_lost_ids=sorted(self._lost & set(ids)))


def _sent(outbox_id: int) -> flow_pb2.OutboxAck:
    return flow_pb2.OutboxAck(id=outbox_id, sent_wa_message_id=f"wamid.{outbox_id}")


@pytest.mark.anyio
async def test_acks_arriving_during_a_call_go_together_and_each_caller_gets_its_own() -> None:
    service = FlowService(lost={3, 5})
    acker = Acker(Calls(stubs=(service,), owner="g"))  # type: ignore[arg-type]
    first = asyncio.create_task(acker.ack([_sent(1)]))
    await asyncio.sleep(0.001)  # its call is in flight
    rest = await asyncio.gather(*(acker.ack([_sent(i)]) for i in range(2, 7)))
    assert [await first, *rest] == [set(), set(), {3}, set(), {5}, set()]
    assert service.calls == [[1], [2, 3, 4, 5, 6]]  # the first at once, the rest behind it
    await acker.close()


@pytest.mark.anyio
async def test_a_refused_batch_is_retried_one_ack_at_a_time() -> None:
    service = FlowService(lost={2}, refuse={3})
    acker = Acker(Calls(stubs=(service,), owner="g"))  # type: ignore[arg-type]
    first = asyncio.create_task(acker.ack([_sent(1)]))
    await asyncio.sleep(0.001)
    rest = await asyncio.gather(*(acker.ack([_sent(i)]) for i in range(2, 5)))
    assert [await first, *rest] == [set(), {2}, set(), set()]
    assert service.calls == [[1], [2, 3, 4], [2], [3], [4]]


@pytest.mark.anyio
async def test_a_cancelled_caller_does_not_take_its_ack_back() -> None:
    service = FlowService(lost=set())
    acker = Acker(Calls(stubs=(service,), owner="g"))  # type: ignore[arg-type]
    first = asyncio.create_task(acker.ack([_sent(1)]))
    await asyncio.sleep(0.001)
    second = asyncio.create_task(acker.ack([_sent(2)]))
    await asyncio.sleep(0)
    second.cancel()
    await acker.close()
    assert await first == set()
    assert second.cancelled()
    assert service.calls == [[1], [2]]


@pytest.mark.anyio
async def test_a_full_batch_does_not_wait_for_the_call_in_flight() -> None:
    service = FlowService(lost=set())
    acker = Acker(Calls(stubs=(service,), owner="g"), max_batch=2)  # type: ignore[arg-type]
    first = asyncio.create_task(acker.ack([_sent(1)]))
    await asyncio.sleep(0.001)
    rest = [asyncio.create_task(acker.ack([_sent(i)])) for i in range(2, 7)]
    await asyncio.sleep(0.001)
    assert service.calls == [[1], [2, 3], [4, 5]]  # three calls in flight, 6 waits for a slot
    await asyncio.gather(first, *rest)
    assert service.calls[-1] == [6]
