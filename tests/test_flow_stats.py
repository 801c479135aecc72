"""GetFlowStats over gRPC, from the event log that real conversations wrote: customers walk the
order flow through HandleMessage, some stop at the quantity step, some complete, one cancels, one
expires in the sweep; the stats say exactly that, per version and time range."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf import json_format

from menuflow.v1 import flow_pb2, flow_pb2_grpc
from tests.chat import Chat
from tests.database import execute
from tests.test_cli import menuflow
from tests.test_conversations import order_coffee

pytestmark = pytest.mark.usefixtures("seeded")


def stats(stub: flow_pb2_grpc.FlowServiceStub, **request: Any) -> flow_pb2.GetFlowStatsResponse:
    return stub.GetFlowStats(flow_pb2.GetFlowStatsRequest(**request))


def funnel(response: flow_pb2.GetFlowStatsResponse) -> dict[str, Any]:
    """The response as plain data: totals, then each step's counts (zeros left out)."""
    found = json_format.MessageToDict(
        response, preserving_proto_field_name=True, always_print_fields_with_no_presence=False
    )
    for key in ("name", "start_time", "end_time", "oldest_event_time"):
        found.pop(key, None)
    found["steps"] = {
        step.pop("step"): {
            **{k: int(v) for k, v in step.items() if k != "exits"},
            "exits": {e["next_step"]: int(e["count"]) for e in step.get("exits", [])},
        }
        for step in found.get("steps", [])
    }
    return {k: (int(v) if isinstance(v, str) else v) for k, v in found.items()}


def to_quantity(chat: Chat) -> None:
    chat.say("hi")
    chat.tap("new_order")
    chat.tap("coffee", "Coffee")
    assert chat.last is not None and chat.last.conversation.current_step == "quantity"


def test_the_stats_say_where_customers_dropped_off(
    stub: flow_pb2_grpc.FlowServiceStub, database_url: str
) -> None:
    customers = [Chat(stub, phone_number=f"165055500{n:02d}") for n in range(7)]
    for chat in customers[:3]:
        order_coffee(chat)
    for chat in customers[3:]:
        to_quantity(chat)
    customers[5].say("cancel")
    execute(
        database_url,
        "UPDATE conversation_state SET expires_at = :past WHERE phone_number = :number",
        past=datetime.now(UTC) - timedelta(hours=1),
        number=customers[6].phone_number,
    )
    stub.SweepExpired(flow_pb2.SweepExpiredRequest())

    assert funnel(stats(stub, name="new_order")) == {
        "started": 7,  # all came from the main menu
        "completed": 3,
        "expired": 1,
        "cancelled": 1,
        "steps": {
            "initial": {"entered": 7, "exits": {"quantity": 7}},
            "quantity": {
                "entered": 7,
                "exits": {"confirmation": 3},
                "expired": 1,
                "cancelled": 1,
                "stopped": 2,  # the two who never answered (not yet expired)
            },
            "confirmation": {"entered": 3, "exits": {}, "completed": 3},
            "complete": {"exits": {}},
            "cancelled": {"exits": {}},
        },
    }
    assert funnel(stats(stub, name="main_menu")) == {
        "started": 7,
        "steps": {"initial": {"entered": 7, "exits": {"new_order:initial": 7}}},
    }


def test_a_version_counts_only_its_conversations(
    stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    order_coffee(Chat(stub, phone_number="16505550101"))
    current = stub.GetTemplate(flow_pb2.GetTemplateRequest(name="new_order")).template
    menu = json_format.MessageToDict(current.menu_structure)
    menu["footer"] = {"text": 'Reply "cancel" to stop'}
    changed = flow_pb2.TemplateDefinition(
        name="new_order", trigger_keywords=current.trigger_keywords, is_active=True
    )
    changed.menu_structure.update(menu)
    assert (
        stub.UpdateTemplate(flow_pb2.UpdateTemplateRequest(template=changed)).template.version == 2
    )
    to_quantity(Chat(stub, phone_number="16505550102"))

    first, second, both = (stats(stub, name="new_order", version=v) for v in (1, 2, 0))

    assert (first.version, first.started, first.completed) == (1, 1, 1)
    assert [(s.step, s.entered) for s in first.steps][:3] == [
        ("initial", 1),
        ("quantity", 1),
        ("confirmation", 1),
    ]
    assert (second.version, second.started, second.completed) == (2, 1, 0)
    assert [(s.step, s.entered) for s in second.steps][:3] == [
        ("initial", 1),
        ("quantity", 1),
        ("confirmation", 0),
    ]
    assert (both.version, both.started, both.completed) == (0, 2, 1)
    assert both.steps[1].entered == 2


def test_a_template_nobody_used_has_its_steps_at_zero(
    stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    found = stats(stub, name="new_order")

    assert funnel(found) == {
        "steps": {
            step: {"exits": {}}
            for step in ("initial", "quantity", "confirmation", "complete", "cancelled")
        }
    }
    # The default range: the week until now.
    span = found.end_time.ToDatetime(UTC) - found.start_time.ToDatetime(UTC)
    assert span == timedelta(days=7)
    assert abs(found.end_time.ToDatetime(UTC) - datetime.now(UTC)) < timedelta(minutes=5)


def test_a_time_range_counts_only_the_events_inside_it(
    stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    order_coffee(Chat(stub, phone_number="16505550201"))
    now = datetime.now(UTC)

    def between(start: datetime, end: datetime) -> flow_pb2.GetFlowStatsResponse:
        request = flow_pb2.GetFlowStatsRequest(name="new_order")
        request.start_time.FromDatetime(start)
        request.end_time.FromDatetime(end)
        return stub.GetFlowStats(request)

    inside = between(now - timedelta(hours=1), now + timedelta(hours=1))
    before = between(now - timedelta(days=2), now - timedelta(days=1))

    assert (inside.started, inside.completed) == (1, 1)
    assert (before.started, before.completed) == (0, 0)
    assert all(step.entered == 0 for step in before.steps)


def test_an_unknown_template_or_version_is_not_found(
    stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    for request in ({"name": "no_such_flow"}, {"name": "new_order", "version": 9}):
        with pytest.raises(grpc.RpcError) as caught:
            stats(stub, **request)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert "no_such_flow" in caught.value.details() or "version 9" in caught.value.details()


def test_a_range_that_ends_before_it_starts_is_invalid(
    stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    request = flow_pb2.GetFlowStatsRequest(name="new_order")
    request.start_time.FromDatetime(datetime(2026, 12, 2, tzinfo=UTC))
    request.end_time.FromDatetime(datetime(2026, 12, 1, tzinfo=UTC))

    with pytest.raises(grpc.RpcError) as caught:
        stub.GetFlowStats(request)

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "ends before it starts" in caught.value.details()


def test_the_cli_prints_the_funnel(
    stub: flow_pb2_grpc.FlowServiceStub, flowsvc_target: str
) -> None:
    order_coffee(Chat(stub, phone_number="16505550301"))
    to_quantity(Chat(stub, phone_number="16505550302"))

    shown = menuflow(flowsvc_target, "templates", "stats", "new_order")

    assert shown.returncode == 0, shown.stderr
    lines = [" ".join(line.split()) for line in shown.stdout.splitlines()]
    assert lines[0].startswith("new_order (all versions), ")
    assert lines[1:] == [
        "started 2, completed 1 (50%), cancelled 0, expired 0, ended 0, handed off 0",
        "initial 2 entered #################### 100%",
        "-> quantity: 2",
        "quantity 2 entered #################### 100%",
        "-> confirmation: 1",
        "stopped here 1",
        "confirmation 1 entered ########## 50%",
        "completed 1",
        "complete 0 entered 0%",
        "cancelled 0 entered 0%",
    ]

    unknown = menuflow(flowsvc_target, "templates", "stats", "nope")
    assert unknown.returncode != 0 and "NOT_FOUND" in unknown.stderr
