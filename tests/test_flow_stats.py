"""GetFlowStats over gRPC, from the event log that real conversations wrote: customers walk the
order flow through HandleMessage, some stop at the quantity step, some complete, one expires in
the sweep; the stats say exactly that, per version and time range."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from menuflow.v1 import flow_pb2, flow_pb2_grpc
from tests.chat import Chat
from tests.test_conversations import order_coffee

pytestmark = pytest.mark.usefixtures("seeded")


def stats(stub: flow_pb2_grpc.FlowServiceStub, **request: Any) -> flow_pb2.GetFlowStatsResponse:
    return stub.GetFlowStats(flow_pb2.GetFlowStatsRequest(**request))


def test_explore(stub: flow_pb2_grpc.FlowServiceStub) -> None:
    order_coffee(Chat(stub, phone_number="16505550001"))
    print(stats(stub, name="new_order"))
    print(stats(stub, name="main_menu"))
    assert False
