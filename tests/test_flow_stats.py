"""GetFlowStats over gRPC, from the event log that real conversations wrote: customers walk the
order flow through HandleMessage, some stop at the quantity step, some complete, one cancels, one
expires in the sweep; the stats say exactly that, per version and time range, with the median
time per step (event times rewritten to known spacing), and for a bench-sized mix of 200."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf import json_format
from sqlalchemy import select, update

from flowsvc.store.db import create_db_engine
from flowsvc.store.models import Event
from flowsvc.store.stats import MOVES
from menuflow.v1 import flow_pb2, flow_pb2_grpc
from tests.chat import Chat
from tests.database import execute
from tests.test_cli import menuflow
from tests.test_conversations import order_coffee

pytestmark = pytest.mark.usefixtures("seeded")


def stats(stub: flow_pb2_grpc.FlowServiceStub, **request: Any) -> flow_pb2.GetFlowStatsResponse:
    return stub.GetFlowStats(flow_pb2.GetFlowStatsRequest(**request))


def funnel(response: flow_pb2.GetFlowStatsResponse) -> dict[str, Any]:
    """The response as plain data: totals, then each step's counts (zeros and the median times
    left out)."""
    found = json_format.MessageToDict(
        response, preserving_proto_field_name=True, always_print_fields_with_no_presence=False
    )
    for key in ("name", "start_time", "end_time", "oldest_event_time"):
        found.pop(key, None)
    found["steps"] = {
        step.pop("step"): {
            **{k: int(v) for k, v in step.items() if k not in ("exits", "median_time")},
            "exits": {e["next_step"]: int(e["count"]) for e in step.get("exits", [])},
        }
        for step in found.get("steps", [])
    }
    return {k: (int(v) if isinstance(v, str) else v) for k, v in found.items()}


def space_out(url: str, gaps: dict[tuple[str, str, str], int]) -> None:
    """Rewrite the events' times: each customer starts an hour ago, and every move (entering a
    step, completing, ending) comes `gaps[(phone number, template, step it leaves)]` seconds
    (default 1) after the one before; other events take the time of the move before them."""
    base = datetime.now(UTC) - timedelta(hours=1)
    engine = create_db_engine(url, pool_size=1)
    try:
        with engine.begin() as connection:
            rows = connection.execute(
                select(
                    Event.id, Event.phone_number, Event.template_name, Event.type, Event.payload
                ).order_by(Event.id)
            ).all()
            at: dict[str, tuple[datetime, tuple[str, str, str] | None]] = {}
            for id_, number, template, type_, payload in rows:
                when, leaving = at.get(number, (base, None))
                if type_ in MOVES:
                    if leaving is not None:
                        when += timedelta(seconds=gaps.get(leaving, 1))
                    step = payload.get("step") if type_ == "step_entered" else None
                    leaving = (number, template, step) if step else None
                at[number] = (when, leaving)
                connection.execute(update(Event).where(Event.id == id_).values(created_at=when))
    finally:
        engine.dispose()


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
                "exits": {"fulfilment": 3},
                "expired": 1,
                "cancelled": 1,
                "stopped": 2,  # the two who never answered (not yet expired)
            },
            "fulfilment": {"entered": 3, "exits": {"confirmation": 3}},
            "confirmation": {"entered": 3, "exits": {}, "completed": 3},
            "address": {"exits": {}},
            "complete": {"exits": {}},
            "cancelled": {"exits": {}},
            "check_address": {"exits": {}},
            "delivery_confirmation": {"exits": {}},
            "address_failed": {"exits": {}},
        },
    }
    assert funnel(stats(stub, name="main_menu")) == {
        "started": 7,
        "steps": {"initial": {"entered": 7, "exits": {"new_order:initial": 7}}},
    }


def test_the_stats_give_the_median_time_per_step(
    stub: flow_pb2_grpc.FlowServiceStub, database_url: str
) -> None:
    done = [Chat(stub, phone_number=f"165055504{n:02d}") for n in range(3)]
    for chat in done:
        order_coffee(chat)
    waiting = Chat(stub, phone_number="16505550499")
    to_quantity(waiting)
    gaps = {
        "initial": (5, 7, 9, 100),  # the last is the one still at quantity
        "quantity": (30, 90, 60),
        "fulfilment": (3, 1, 2),
        "confirmation": (2, 6, 4),
    }
    space_out(
        database_url,
        {
            (chat.phone_number, "new_order", step): seconds[i]
            for step, seconds in gaps.items()
            for i, chat in enumerate([*done, waiting][: len(seconds)])
        }
        | {(chat.phone_number, "main_menu", "initial"): 40 + i for i, chat in enumerate(done)},
    )

    found = stats(stub, name="new_order")
    medians = {
        s.step: s.median_time.ToTimedelta() for s in found.steps if s.HasField("median_time")
    }
    assert medians == {
        "initial": timedelta(seconds=8),  # 5, 7, 9, 100: between 7 and 9
        "quantity": timedelta(seconds=60),  # the one still there has no time yet
        "fulfilment": timedelta(seconds=2),
        "confirmation": timedelta(seconds=4),
    }
    menu = stats(stub, name="main_menu")
    # Until the step_entered of new_order, another template: 40, 41, 42 and the default 1.
    assert menu.steps[0].median_time.ToTimedelta() == timedelta(seconds=40.5)


def test_two_hundred_customers_funnel_exactly(
    stub: flow_pb2_grpc.FlowServiceStub, database_url: str
) -> None:
    """A bench run's mix, scripted: 120 order, 40 stop at the quantity, 25 cancel there, 15 go
    quiet there and expire in the sweep; sent in HandleMessages batches as the gateway does."""
    chats = [Chat(stub, phone_number=f"1650556{n:04d}") for n in range(200)]
    completing, stopping, cancelling, expiring = (
        chats[:120],
        chats[120:160],
        chats[160:185],
        chats[185:],
    )

    def turn(messages: list[flow_pb2.InboundMessage]) -> None:
        for at in range(0, len(messages), 100):
            batch = flow_pb2.HandleMessagesRequest(messages=messages[at : at + 100])
            results = stub.HandleMessages(batch).results
            assert [r.WhichOneof("result") for r in results] == ["handled"] * len(results)

    turn([c.message(text="hi") for c in chats])
    turn([c.message(selection=flow_pb2.Selection(id="new_order")) for c in chats])
    turn([c.message(selection=flow_pb2.Selection(id="coffee", title="Coffee")) for c in chats])
    turn([c.message(text="2") for c in completing] + [c.message(text="cancel") for c in cancelling])
    turn([c.message(selection=flow_pb2.Selection(id="pickup")) for c in completing])
    turn([c.message(selection=flow_pb2.Selection(id="yes")) for c in completing])
    execute(
        database_url,
        "UPDATE conversation_state SET expires_at = :past WHERE phone_number >= :first",
        past=datetime.now(UTC) - timedelta(hours=1),
        first=expiring[0].phone_number,
    )
    assert stub.SweepExpired(flow_pb2.SweepExpiredRequest()).expired_conversations == 15

    assert len(stopping) == 40
    assert funnel(stats(stub, name="new_order")) == {
        "started": 200,
        "completed": 120,
        "expired": 15,
        "cancelled": 25,
        "steps": {
            "initial": {"entered": 200, "exits": {"quantity": 200}},
            "quantity": {
                "entered": 200,
                "exits": {"fulfilment": 120},
                "expired": 15,
                "cancelled": 25,
                "stopped": 40,
            },
            "fulfilment": {"entered": 120, "exits": {"confirmation": 120}},
            "confirmation": {"entered": 120, "exits": {}, "completed": 120},
            "address": {"exits": {}},
            "complete": {"exits": {}},
            "cancelled": {"exits": {}},
            "check_address": {"exits": {}},
            "delivery_confirmation": {"exits": {}},
            "address_failed": {"exits": {}},
        },
    }
    assert funnel(stats(stub, name="main_menu")) == {
        "started": 200,
        "steps": {"initial": {"entered": 200, "exits": {"new_order:initial": 200}}},
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
    assert [(s.step, s.entered) for s in first.steps][:4] == [
        ("initial", 1),
        ("quantity", 1),
        ("fulfilment", 1),
        ("confirmation", 1),
    ]
    assert (second.version, second.started, second.completed) == (2, 1, 0)
    assert [(s.step, s.entered) for s in second.steps][:4] == [
        ("initial", 1),
        ("quantity", 1),
        ("fulfilment", 0),
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
            for step in (
                "initial",
                "quantity",
                "fulfilment",
                "confirmation",
                "address",
                "complete",
                "cancelled",
                "check_address",
                "delivery_confirmation",
                "address_failed",
            )
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
    stub: flow_pb2_grpc.FlowServiceStub, flowsvc_target: str, database_url: str
) -> None:
    order_coffee(Chat(stub, phone_number="16505550301"))
    to_quantity(Chat(stub, phone_number="16505550302"))
    space_out(
        database_url,
        {
            ("16505550301", "new_order", "initial"): 5,
            ("16505550302", "new_order", "initial"): 9,
            ("16505550301", "new_order", "quantity"): 75,
            ("16505550301", "new_order", "fulfilment"): 2,
            ("16505550301", "new_order", "confirmation"): 3,
        },
    )

    shown = menuflow(flowsvc_target, "templates", "stats", "new_order")

    assert shown.returncode == 0, shown.stderr
    lines = [" ".join(line.split()) for line in shown.stdout.splitlines()]
    assert lines[0].startswith("new_order (all versions), ")
    assert lines[1:] == [
        "started 2, completed 1 (50%), cancelled 0, expired 0, ended 0, handed off 0",
        "initial 2 entered #################### 100% median 7s",
        "-> quantity: 2",
        "quantity 2 entered #################### 100% median 1m 15s",
        "-> fulfilment: 1",
        "stopped here 1",
        "fulfilment 1 entered ########## 50% median 2s",
        "-> confirmation: 1",
        "confirmation 1 entered ########## 50% median 3s",
        "completed 1",
        "address 0 entered 0%",
        "complete 0 entered 0%",
        "cancelled 0 entered 0%",
        "check_address 0 entered 0%",
        "delivery_confirmation 0 entered 0%",
        "address_failed 0 entered 0%",
    ]

    unknown = menuflow(flowsvc_target, "templates", "stats", "nope")
    assert unknown.returncode != 0 and "NOT_FOUND" in unknown.stderr
