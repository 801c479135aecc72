"""A lane sends a customer's messages in id order, whatever order the calls leasing them
answered in (gateway.lanes)."""

from __future__ import annotations

from collections import deque

from gateway.lanes import _insert
from gateway.leases import Leased
from menuflow.v1 import flow_pb2


def leased(outbox_id: int) -> Leased:
    return Leased(flow_pb2.OutboxMessage(id=outbox_id), deadline=0.0)


def ids(queue: deque[Leased]) -> list[int]:
    return [item.message.id for item in queue]


def test_a_message_leased_late_goes_before_the_later_ones_not_begun() -> None:
    queue = deque([leased(1), leased(5)])  # 1 is being sent; 5 came with a HandleMessage answer

    _insert(queue, leased(3), running=True)  # 3 came with the ack of 1, answered after

    assert ids(queue) == [1, 3, 5]


def test_the_message_a_running_lane_took_keeps_its_place() -> None:
    queue = deque([leased(4)])

    _insert(queue, leased(2), running=True)

    assert ids(queue) == [4, 2]  # 4 is in flight: nothing can go before it any more


def test_a_lane_not_running_yet_is_sorted_whole() -> None:
    queue = deque([leased(4)])

    _insert(queue, leased(2), running=False)

    assert ids(queue) == [2, 4]
