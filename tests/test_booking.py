"""The shipped `booking` flow end to end: a real flowsvc (SQLite, or PostgreSQL with
TEST_DATABASE_URL), a real gateway, the Graph API stand-in (which refuses what Meta would, e.g. a
list of more than 10 rows) and the business stand-in answering `slots` on loopback, named by the
same CALL_ENDPOINTS setting `make run` gives in dev mode. What is asserted is what the customer is
sent, what the endpoint was asked and the stored booking."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import json_format

from gateway.call_endpoints import CallEndpoint, parse
from menuflow.business_standin import SLOT_TIMES, BusinessStandin
from menuflow.v1 import flow_pb2, flow_pb2_grpc
from tests.gateway_harness import (
    BUSINESS,
    gateway_settings,
    message,
    post_webhook,
    running_gateway,
    seed_default_templates,
    wait_until,
    webhook,
)
from tests.graph_standin import StandinServer
from tests.servers import free_port

MORE = "More ▸"
PREVIOUS = "◂ Previous"


@pytest.fixture(scope="module")
def graph() -> Iterator[StandinServer]:
    with StandinServer() as server:
        yield server


@pytest.fixture
def seeded(stub: flow_pb2_grpc.FlowServiceStub) -> flow_pb2_grpc.FlowServiceStub:
    seed_default_templates(stub)
    return stub


def endpoints(url: str) -> tuple[CallEndpoint, ...]:
    """Both of the stand-in's endpoints, pointed at `url`."""
    return tuple(CallEndpoint(name, url, {}, True) for name in ("address_check", "slots"))


@pytest.fixture
def meta(flowsvc_target: str, graph: StandinServer, api: BusinessStandin) -> Iterator[httpx.Client]:
    """Meta's side: webhooks to a gateway whose CALL_ENDPOINTS is the stand-in's own setting."""
    graph.standin.reset()
    settings = gateway_settings(
        flowsvc_target,
        graph.url,
        call_endpoints=parse(api.endpoint_setting(), {}),
        call_poll_seconds=0.05,
    )
    with running_gateway(settings) as gateway:
        with httpx.Client(base_url=gateway.url, timeout=30) as client:
            yield client


def sent_to(graph: StandinServer, customer: str, count: int) -> list[dict[str, Any]]:
    """Wait until Meta accepted `count` messages for `customer`; their bodies."""

    def accepted() -> list[dict[str, Any]]:
        return [r.body for r in graph.standin.accepted() if r.body.get("to") == customer]

    wait_until(lambda: len(accepted()) >= count, 15)
    return accepted()


def text_of(body: dict[str, Any]) -> str:
    if body["type"] == "text":
        return str(body["text"]["body"])
    return str(body["interactive"]["body"]["text"])


def say(meta: httpx.Client, customer: str, **content: Any) -> None:
    assert post_webhook(meta, webhook(message(customer, **content))).status_code == 200


def rows(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [row for section in body["interactive"]["action"]["sections"] for row in section["rows"]]


def row(body: dict[str, Any], title: str) -> tuple[str, str]:
    [found] = [r for r in rows(body) if r["title"] == title]
    return found["id"], found["title"]


def button(body: dict[str, Any], title: str) -> tuple[str, str]:
    [found] = [
        b["reply"] for b in body["interactive"]["action"]["buttons"] if b["reply"]["title"] == title
    ]
    return found["id"], found["title"]


def everything_meta_got_was_accepted(graph: StandinServer, customer: str) -> None:
    received = [r for r in graph.standin.received() if r.body.get("to") == customer]
    assert received and all(r.error_code is None for r in received)


def booked(seeded: flow_pb2_grpc.FlowServiceStub, text: str) -> dict[str, Any]:
    """The stored booking whose reference ends the confirmation text."""
    reference = text.split("reference is ", 1)[1].split(".", 1)[0]
    found = seeded.GetResult(flow_pb2.GetResultRequest(reference=reference)).result
    assert found.template_name == "booking"
    return json_format.MessageToDict(found.context)


def test_a_table_for_four_at_a_time_on_the_second_page(
    meta: httpx.Client, graph: StandinServer, api: BusinessStandin, seeded: Any
) -> None:
    customer = "15553330001"
    say(meta, customer, text="I'd like to book a table")
    assert "How many guests?" in text_of(sent_to(graph, customer, 1)[0])
    say(meta, customer, text="4")
    moment, first = sent_to(graph, customer, 3)[1:3]
    assert text_of(moment) == "One moment, I'm looking for free tables for 4…"
    assert text_of(first) == "These times are free for 4. Which one suits you?"
    assert first["interactive"]["action"]["button"] == "Free times"
    assert [r["title"] for r in rows(first)] == [*SLOT_TIMES[:9], MORE]
    assert [(r["method"], r["path"]) for r in api.requests] == [("GET", "/slots?party=4")]

    say(meta, customer, row=row(first, MORE))
    second = sent_to(graph, customer, 4)[3]
    assert [r["title"] for r in rows(second)] == [PREVIOUS, *SLOT_TIMES[9:]]

    say(meta, customer, row=row(second, "21:00"))
    confirm = sent_to(graph, customer, 5)[4]
    assert text_of(confirm) == "📅 A table for 4 at 21:00.\n\nShall I book it?"
    say(meta, customer, button=button(confirm, "✅ Yes"))
    done = text_of(sent_to(graph, customer, 6)[5])
    assert done.startswith("Booked! A table for 4 at 21:00. Your booking reference is ")
    result = booked(seeded, done)
    assert result["party"] == 4
    assert result["slot"] == {"label": "21:00", "time": "21:00"}
    assert result["slot_time"] == "21:00"
    assert len(api.requests) == 1  # the call ran once; the pages came from the context
    everything_meta_got_was_accepted(graph, customer)


def test_the_slots_endpoint_down_takes_the_polite_path(
    flowsvc_target: str, graph: StandinServer, seeded: Any
) -> None:
    customer = "15553330002"
    graph.standin.reset()
    nothing_there = f"http://127.0.0.1:{free_port()}"  # connection refused
    settings = gateway_settings(
        flowsvc_target, graph.url, call_endpoints=endpoints(nothing_there), call_poll_seconds=0.05
    )
    with running_gateway(settings) as gateway, httpx.Client(base_url=gateway.url) as client:
        say(client, customer, text="book")
        sent_to(graph, customer, 1)
        say(client, customer, text="2")
        sent = [text_of(b) for b in sent_to(graph, customer, 3)]
    assert sent[1:] == [
        "One moment, I'm looking for free tables for 2…",
        "Sorry, I can't see our free tables right now. Please try again in a few minutes, or "
        "call us on +1 555 0100.",
    ]
    failed = seeded.ListEvents(
        flow_pb2.ListEventsRequest(
            filter=flow_pb2.EventFilter(
                phone_number=customer, types=[flow_pb2.EVENT_TYPE_CALL_FAILED]
            )
        )
    ).events
    assert [e.call_failed.endpoint for e in failed] == ["slots"]
    with pytest.raises(grpc.RpcError) as ended:  # nothing left waiting
        seeded.GetConversation(
            flow_pb2.GetConversationRequest(
                customer=flow_pb2.Customer(phone_number_id=BUSINESS, phone_number=customer)
            )
        )
    assert ended.value.code() == grpc.StatusCode.NOT_FOUND


def test_a_party_of_twelve_is_asked_to_call_and_nothing_is_called(
    meta: httpx.Client, graph: StandinServer, api: BusinessStandin, seeded: Any
) -> None:
    customer = "15553330003"
    say(meta, customer, text="book")
    sent_to(graph, customer, 1)
    say(meta, customer, text="12")
    assert text_of(sent_to(graph, customer, 2)[1]) == (
        "For more than 8 guests please call us on +1 555 0100: we will gladly arrange a table "
        'for 12. Send "menu" for anything else.'
    )
    assert api.requests == []


def test_a_booking_in_spanish(
    meta: httpx.Client, graph: StandinServer, api: BusinessStandin, seeded: Any
) -> None:
    customer = "15553330004"
    say(meta, customer, text="quiero reservar")
    assert text_of(sent_to(graph, customer, 1)[0]).startswith(
        "📅 Vamos a reservarte una mesa. ¿Cuántas personas?"
    )
    say(meta, customer, text="2")
    moment, first = sent_to(graph, customer, 3)[1:3]
    assert text_of(moment) == "Un momento, busco mesas libres para 2…"
    assert text_of(first) == "Estas horas están libres para 2. ¿Cuál te viene bien?"
    assert first["interactive"]["action"]["button"] == "Horas libres"
    assert [(r["method"], r["path"]) for r in api.requests] == [("GET", "/slots?party=2")]

    say(meta, customer, row=row(first, "13:00"))
    confirm = sent_to(graph, customer, 4)[3]
    assert text_of(confirm) == "📅 Una mesa para 2 a las 13:00.\n\n¿La reservo?"
    assert [b["reply"]["title"] for b in confirm["interactive"]["action"]["buttons"]] == [
        "✅ Sí",
        "🕘 Otra hora",
        "❌ No",
    ]
    say(meta, customer, button=button(confirm, "✅ Sí"))
    done = text_of(sent_to(graph, customer, 5)[4])
    assert done.startswith("¡Reservado! Una mesa para 2 a las 13:00.")
    reference = done.split("referencia de reserva es ", 1)[1].split(".", 1)[0]
    result = seeded.GetResult(flow_pb2.GetResultRequest(reference=reference)).result
    assert json_format.MessageToDict(result.context)["slot_time"] == "13:00"
    everything_meta_got_was_accepted(graph, customer)


def test_no_free_times_is_said_at_once_and_a_reply_without_slots_apologises(
    meta: httpx.Client, graph: StandinServer, api: BusinessStandin, seeded: Any
) -> None:
    full, broken = "15553330005", "15553330006"
    api.behave(slots=0)
    say(meta, full, text="book")
    sent_to(graph, full, 1)
    say(meta, full, text="3")
    assert text_of(sent_to(graph, full, 3)[2]) == (
        'Sorry, we have no free tables for 3 today. Send "book" to try again later, or call us '
        "on +1 555 0100."
    )
    api.behave(without="slots")
    say(meta, broken, text="book")
    sent_to(graph, broken, 1)
    say(meta, broken, text="3")
    assert text_of(sent_to(graph, broken, 3)[2]).startswith("Sorry, I can't see our free tables")
