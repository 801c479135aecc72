"""Menus built from data, end to end: webhooks through the real gateway, the booking service's
calls through menuflow.client (StartConversation's context, UpdateConversation), and what the
Graph API stand-in receives, which checks Meta's shapes and limits (a list of more than 10 rows
would be refused there)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from menuflow.client import Connection, FlowClient
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
from tests.test_built_menus import BOOKING_FILE, DOCTORS, slots


@pytest.fixture(scope="module")
def graph() -> Iterator[StandinServer]:
    with StandinServer() as server:
        yield server


@pytest.fixture
def clinic(flowsvc_target: str, stub: flow_pb2_grpc.FlowServiceStub) -> Iterator[FlowClient]:
    """The clinic's booking service, holding a client."""
    seed_default_templates(stub)
    with FlowClient(Connection(target=flowsvc_target, business=BUSINESS)) as client:
        client.import_templates([json.loads(BOOKING_FILE.read_text(encoding="utf-8"))])
        yield client


@pytest.fixture
def meta(flowsvc_target: str, graph: StandinServer, clinic: FlowClient) -> Iterator[httpx.Client]:
    """Meta's side: webhooks to the gateway, sends to the stand-in."""
    graph.standin.reset()
    with running_gateway(gateway_settings(flowsvc_target, graph.url)) as gateway:
        with httpx.Client(base_url=gateway.url, timeout=30) as client:
            yield client


def sent_to(graph: StandinServer, customer: str, count: int) -> list[dict[str, Any]]:
    """Wait for `count` messages Meta accepted for `customer`; their bodies."""

    def accepted() -> list[dict[str, Any]]:
        return [r.body for r in graph.standin.accepted() if r.body["to"] == customer]

    wait_until(lambda: len(accepted()) >= count, 15)
    return accepted()


def say(meta: httpx.Client, customer: str, **content: Any) -> None:
    assert post_webhook(meta, webhook(message(customer, **content))).status_code == 200


def rows(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [row for section in body["interactive"]["action"]["sections"] for row in section["rows"]]


def row(body: dict[str, Any], title: str) -> tuple[str, str]:
    [found] = [r for r in rows(body) if r["title"] == title]
    return found["id"], found["title"]


def everything_meta_got_was_accepted(graph: StandinServer, customer: str) -> None:
    received = [r for r in graph.standin.received() if r.body.get("to") == customer]
    assert received and all(r.error_code is None for r in received)
    lists = [r.body for r in received if r.body.get("interactive", {}).get("type") == "list"]
    assert lists and all(len(rows(body)) <= 10 for body in lists)


def test_37_slots_from_the_start_context_are_paged_and_a_tap_books_one(
    meta: httpx.Client, graph: StandinServer, clinic: FlowClient
) -> None:
    customer = "15552220001"
    say(meta, customer, text="hi")
    sent_to(graph, customer, 1)  # the main menu
    clinic.start_conversation(
        customer, "booking_slots", context={"slots": slots(37), "doctors": DOCTORS}
    )
    first = sent_to(graph, customer, 2)[1]
    assert first["interactive"]["type"] == "list"
    assert len(rows(first)) == 10 and rows(first)[-1]["title"] == "More ▸"

    say(meta, customer, row=row(first, "More ▸"))
    second = sent_to(graph, customer, 3)[2]
    assert [r["title"] for r in rows(second)][:2] == ["◂ Previous", "Slot 10"]

    say(meta, customer, row=row(first, "Slot 4"))  # from the older page
    doctors = sent_to(graph, customer, 4)[3]
    assert doctors["interactive"]["body"]["text"] == "Slot 4 at 09:00: who would you like to see?"
    ada = doctors["interactive"]["action"]["buttons"][0]["reply"]

    say(meta, customer, button=(ada["id"], ada["title"]))
    booked = sent_to(graph, customer, 5)[4]["text"]["body"]
    assert booked.startswith("Booked: Slot 4 at 09:00 with Dr Ada. Your reference is ")
    reference = booked.rsplit(" ", 1)[-1].rstrip(".")
    result = clinic.get_result(reference).context
    assert result["slot"] == {"label": "Slot 4", "time": "09:00"}
    assert result["doctor_name"] == "Dr Ada"
    everything_meta_got_was_accepted(graph, customer)


def test_slots_replaced_by_update_conversation_are_sent_and_an_old_tap_is_asked_again(
    meta: httpx.Client, graph: StandinServer, clinic: FlowClient
) -> None:
    customer = "15552220002"
    say(meta, customer, text="hi")
    sent_to(graph, customer, 1)
    clinic.start_conversation(
        customer, "booking_slots", context={"slots": slots(3), "doctors": DOCTORS}
    )
    old = sent_to(graph, customer, 2)[1]
    wednesday = [{"label": f"Wed {hour}:00", "time": f"{hour}:00"} for hour in range(8, 20)]

    clinic.update_conversation(customer, context={"slots": wednesday}, send=True)

    new = sent_to(graph, customer, 3)[2]
    assert [r["title"] for r in rows(new)][:2] == ["Wed 8:00", "Wed 9:00"]
    assert rows(new)[-1]["title"] == "More ▸"  # 12 slots: two pages

    say(meta, customer, row=row(old, "Slot 1"))  # no longer offered
    notice, again = sent_to(graph, customer, 5)[3:5]
    assert notice["text"]["body"] == "That option is not available right now."
    assert rows(again)[0]["title"] == "Wed 8:00"

    say(meta, customer, text="wed 10:00")  # a typed title chooses too
    doctors = sent_to(graph, customer, 6)[5]
    assert doctors["interactive"]["body"]["text"].startswith("Wed 10:00 at 10:00:")
    waiting = clinic.get_conversation(customer)
    assert waiting.current_step == "doctor"
    assert dict(waiting.context)["slot_label"] == "Wed 10:00"
    everything_meta_got_was_accepted(graph, customer)


def test_a_spanish_customers_paged_list_pages_in_spanish(
    meta: httpx.Client,
    graph: StandinServer,
    clinic: FlowClient,
    stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    customer = "15552220009"
    stub.SetLanguage(
        flow_pb2.SetLanguageRequest(
            customer=flow_pb2.Customer(phone_number_id=BUSINESS, phone_number=customer),
            language="es",
        )
    )
    say(meta, customer, text="hola")
    sent_to(graph, customer, 1)  # the main menu, in Spanish
    clinic.start_conversation(
        customer, "booking_slots", context={"slots": slots(25), "doctors": DOCTORS}
    )
    first = sent_to(graph, customer, 2)[1]
    sections = first["interactive"]["action"]["sections"]
    assert [s["title"] for s in sections][1:] == ["Más"]
    assert sections[-1]["rows"][0]["title"] == "Más ▸"

    say(meta, customer, row=row(first, "Más ▸"))
    second = sent_to(graph, customer, 3)[2]
    titles = [s["title"] for s in second["interactive"]["action"]["sections"]]
    assert titles[0] == "Atrás" and titles[-1] == "Más"
    assert [r["title"] for r in rows(second)][:2] == ["◂ Anterior", "Slot 10"]

    say(meta, customer, row=row(second, "◂ Anterior"))
    again = sent_to(graph, customer, 4)[3]
    assert [r["title"] for r in rows(again)][:2] == ["Slot 1", "Slot 2"]
    everything_meta_got_was_accepted(graph, customer)
